"""Limits of the opsledger API that both ends keep (the one home of each).

A gRPC message is at most 1 MiB either way, and so is an HTTP request body
at the gateway (larger is 413): the client, the server and the gateway all
read it from here.
"""
MAX_MESSAGE_BYTES = 1 << 20
