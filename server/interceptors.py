"""gRPC server interceptors: one log line + metrics per call, bearer-token auth.

Which methods need the token comes from the protos (``server.api``: every
RPC whose ``google.api.http`` verb is not GET changes something). Reads, health and
reflection stay open.
"""
from __future__ import annotations

import hmac
import time

import grpc

from server.observability import Metrics, event_log

log = event_log("opsledger.rpc")


def _metadata(details: grpc.HandlerCallDetails, key: str) -> str | None:
    for k, v in details.invocation_metadata or ():
        if k == key:
            return v if isinstance(v, str) else v.decode("latin-1")
    return None


def _refusal(code: grpc.StatusCode, message: str, like: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    async def refuse(_request, context):
        await context.abort(code, message)

    return grpc.unary_unary_rpc_method_handler(
        refuse, request_deserializer=like.request_deserializer, response_serializer=like.response_serializer
    )


class TokenAuth(grpc.aio.ServerInterceptor):
    def __init__(self, token: str, protected: frozenset[str]) -> None:
        self._expected = f"Bearer {token}".encode()
        self.protected = protected

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None or details.method not in self.protected:
            return handler
        given = _metadata(details, "authorization")
        if given is None:
            return _refusal(grpc.StatusCode.UNAUTHENTICATED, "authorization: a Bearer token is required", handler)
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self._expected):
            return _refusal(grpc.StatusCode.UNAUTHENTICATED, "authorization: the token is not valid", handler)
        return handler


class CallObserver(grpc.aio.ServerInterceptor):
    """One structured log line and the metrics of every unary call."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary
        method = details.method
        forwarded = _metadata(details, "x-forwarded-for")

        async def observed(request, context):
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                return await inner(request, context)
            except BaseException:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            finally:
                if isinstance(code, int):
                    code = grpc.StatusCode.UNKNOWN
                elapsed = time.perf_counter() - started
                name = method.rsplit("/", 1)[-1]
                self.metrics.rpcs.labels(name, code.name).inc()
                self.metrics.rpc_latency.labels(name).observe(elapsed)
                log.info(
                    "rpc",
                    method=method,
                    code=code.name,
                    duration_ms=round(elapsed * 1000, 3),
                    request_id=getattr(request, "request_id", None) or None,
                    processor_id=getattr(request, "processor_id", None) or None,
                    peer=context.peer(),
                    via=forwarded,
                )

        return grpc.unary_unary_rpc_method_handler(
            observed, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )
