"""A small typed client over the generated stubs.

Deadlines on every call; bearer token and TLS options. The CLI and the
worker use it; internal services may use it or the stubs.

Retries (AIP-194): only UNAVAILABLE is ever retried (every other code is an
answer, not a fault), with jittered exponential backoff, and only for a call
that ``RETRY_POLICY`` says is safe to repeat: a read always; a write only
when its request carries a token that makes a repeat answer the first
attempt's result (Submit's ``idempotency_key``, the transitions' and
RunCycle's ``idempotency_key``, which this client sets on every such call
unless the caller passes its own). UNAVAILABLE from
the transport can follow a call the server already carried out, so a write
without a token is never repeated blindly.
"""
from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import grpc
from google.protobuf import struct_pb2

from opsledger.client.limits import MAX_MESSAGE_BYTES
from opsledger.client.tracing import with_trace_context
from opsledger.v1 import cycle_pb2, cycle_pb2_grpc, tickets_pb2_grpc
from opsledger.v1 import tickets_pb2 as pb


def _always(_request) -> bool:
    return True


def _never(_request) -> bool:
    return False


def _with_token(request) -> bool:
    """Safe to repeat when the request carries its retry token (AIP-155):
    a repeat then answers the first attempt instead of acting again."""
    return request.HasField("idempotency_key") and bool(request.idempotency_key)

# Per RPC: may a call that answered UNAVAILABLE be sent again?
RETRY_POLICY = {
    "GetBoard": _always,
    "GetTicket": _always,
    "GetLatestCycle": _always,
    "GetLatestReco": _always,
    "SubmitTicket": _with_token,
    "ConsumeTicket": _with_token,
    "CompleteTicket": _with_token,
    "ConsumeNext": _with_token,
    "RunCycle": _with_token,
    # A dry run writes nothing; a real run writes a report each time.
    "ReapStaleTickets": lambda request: request.dry_run,
}


def new_token() -> str:
    """A fresh retry token: one per logical call, the same for each of its retries."""
    return str(uuid.uuid4())


def may_retry(rpc: str, request) -> bool:
    return RETRY_POLICY.get(rpc, _never)(request)


def make_channel(
    target: str,
    tls_ca: Path | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> grpc.Channel:
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    if tls_ca is not None or tls_cert is not None:
        creds = grpc.ssl_channel_credentials(
            root_certificates=Path(tls_ca).read_bytes() if tls_ca else None,
            private_key=Path(tls_key).read_bytes() if tls_key else None,
            certificate_chain=Path(tls_cert).read_bytes() if tls_cert else None,
        )
        return grpc.secure_channel(target, creds, options=options)
    return grpc.insecure_channel(target, options=options)


class OpsledgerClient:
    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        token: str | None = None,
        tls_ca: Path | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        timeout: float = 10.0,
        retries: int = 4,
        backoff: float = 0.2,
        channel: grpc.Channel | None = None,
    ) -> None:
        self.channel = channel or make_channel(target, tls_ca, tls_cert, tls_key)
        self.tickets = tickets_pb2_grpc.TicketServiceStub(self.channel)
        self.cycles = cycle_pb2_grpc.CycleServiceStub(self.channel)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.sleep = time.sleep

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> OpsledgerClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def call(self, rpc: str, method, request, timeout: float | None = None):
        """One RPC with a deadline; UNAVAILABLE is retried with jittered backoff
        when ``RETRY_POLICY[rpc]`` says this request is safe to repeat."""
        attempt = 0
        retry = may_retry(rpc, request)
        while True:
            try:
                return method(request, timeout=timeout or self.timeout, metadata=with_trace_context(self.metadata))
            except grpc.RpcError as exc:
                if not retry or exc.code() != grpc.StatusCode.UNAVAILABLE or attempt >= self.retries:
                    raise
                delay = self.backoff * (2**attempt) * (0.5 + random.random())
                attempt += 1
                self.sleep(delay)

    # -- tickets ------------------------------------------------------------------
    def submit(
        self,
        request_type: str,
        payload: dict,
        trace_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> pb.SubmitTicketResponse:
        struct = struct_pb2.Struct()
        struct.update(payload)
        req = pb.SubmitTicketRequest(request_type=pb.RequestType.Value.Value(request_type), payload=struct)  # type: ignore[arg-type]
        if trace_id is not None:
            req.trace_id = trace_id
        if idempotency_key is not None:
            req.idempotency_key = idempotency_key
        return self.call("SubmitTicket", self.tickets.SubmitTicket, req)

    def consume(self, request_id: str, processor_id: str = "", message: str | None = None,
                idempotency_key: str | None = None) -> pb.ConsumeTicketResponse:
        req = pb.ConsumeTicketRequest(request_id=request_id, processor_id=processor_id,
                                      idempotency_key=idempotency_key or new_token())
        if message is not None:
            req.message = message
        return self.call("ConsumeTicket", self.tickets.ConsumeTicket, req)

    def complete(
        self,
        request_id: str,
        status: str,
        processor_id: str = "",
        message: str = "",
        artifacts: Sequence[str] = (),
        idempotency_key: str | None = None,
    ) -> pb.CompleteTicketResponse:
        req = pb.CompleteTicketRequest(
            request_id=request_id,
            status=pb.TicketStatus.Value.Value(status),  # type: ignore[arg-type]
            processor_id=processor_id,
            message=message,
            artifacts=list(artifacts),
            idempotency_key=idempotency_key or new_token(),
        )
        return self.call("CompleteTicket", self.tickets.CompleteTicket, req)

    def board(
        self,
        page_size: int = 0,
        page_token: str = "",
        statuses: Iterable[str] = (),
        types: Iterable[str] = (),
    ) -> pb.GetBoardResponse:
        req = pb.GetBoardRequest(
            page_size=page_size,
            page_token=page_token,
            status=[pb.TicketStatus.Value.Value(s) for s in statuses],  # type: ignore[misc]
            request_type=[pb.RequestType.Value.Value(t) for t in types],  # type: ignore[misc]
        )
        return self.call("GetBoard", self.tickets.GetBoard, req)

    def ticket(self, request_id: str) -> pb.GetTicketResponse:
        return self.call("GetTicket", self.tickets.GetTicket, pb.GetTicketRequest(request_id=request_id))

    @staticmethod
    def _consume_next_request(processor_id: str, types: Iterable[str], wait_seconds: float,
                              message: str | None, idempotency_key: str | None = None) -> pb.ConsumeNextRequest:
        req = pb.ConsumeNextRequest(
            processor_id=processor_id,
            request_types=[pb.RequestType.Value.Value(t) for t in types],  # type: ignore[misc]
            wait_seconds=wait_seconds,
            idempotency_key=idempotency_key or new_token(),
        )
        if message is not None:
            req.message = message
        return req

    def consume_next(
        self,
        processor_id: str = "",
        types: Iterable[str] = (),
        wait_seconds: float = 0.0,
        message: str | None = None,
        idempotency_key: str | None = None,
    ) -> pb.ConsumeNextResponse:
        req = self._consume_next_request(processor_id, types, wait_seconds, message, idempotency_key)
        return self.call("ConsumeNext", self.tickets.ConsumeNext, req, timeout=wait_seconds + self.timeout)

    def consume_next_future(self, processor_id: str = "", types: Iterable[str] = (), wait_seconds: float = 0.0):
        """The same call, not waited for: ``cancel()`` it to give up (nothing is claimed then)."""
        req = self._consume_next_request(processor_id, types, wait_seconds, None)
        return self.tickets.ConsumeNext.future(req, timeout=wait_seconds + self.timeout,
                                               metadata=with_trace_context(self.metadata))

    def reap(self, threshold_seconds: int = 0, max_clean: int = 0, dry_run: bool = False) -> pb.ReapStaleTicketsResponse:
        req = pb.ReapStaleTicketsRequest(threshold_seconds=threshold_seconds, max_clean=max_clean, dry_run=dry_run)
        return self.call("ReapStaleTickets", self.tickets.ReapStaleTickets, req)

    def watch(
        self,
        after: str = "",
        from_beginning: bool = False,
        statuses: Iterable[str] = (),
        types: Iterable[str] = (),
        progress: bool = False,
        max_backoff: float = 10.0,
        reconnect: bool = True,
    ):
        """Every ledger event after ``after`` (see WatchTickets), as they come.

        A broken stream (UNAVAILABLE, a server restart, a network fault) is
        reopened after a jittered backoff from the last revision seen
        (progress beats included), so the iteration misses no event and
        repeats none. Any other status (a bad ``after`` or filter) is raised.
        PROGRESS events are yielded only with ``progress=True``.
        ``self.last_revision`` is where a later ``watch(after=...)`` resumes."""
        self.last_revision = after
        attempt = 0
        while True:
            req = pb.WatchTicketsRequest(
                after=self.last_revision,
                from_beginning=from_beginning and not self.last_revision,
                status=[pb.TicketStatus.Value.Value(s) for s in statuses],  # type: ignore[misc]
                request_type=[pb.RequestType.Value.Value(t) for t in types],  # type: ignore[misc]
            )
            call = self.tickets.WatchTickets(req, metadata=self.metadata)
            try:
                for event in call:
                    attempt = 0
                    self.last_revision = event.revision
                    if event.kind != pb.TicketEvent.Kind.PROGRESS or progress:
                        yield event
            except grpc.RpcError as exc:
                if not reconnect or exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL):
                    raise
            finally:
                call.cancel()  # a consumer that stops iterating frees the stream at once
            if not reconnect:
                return
            self.sleep(min(max_backoff, self.backoff * (2 ** min(attempt, 16))) * (0.5 + random.random()))
            attempt += 1

    # -- live cycle ---------------------------------------------------------------
    def run_cycle(self, timeout: float = 300.0, idempotency_key: str | None = None) -> cycle_pb2.RunCycleResponse:
        """One live cycle; waits while another runs, hence the longer deadline."""
        req = cycle_pb2.RunCycleRequest(confirm=True, idempotency_key=idempotency_key or new_token())
        return self.call("RunCycle", self.cycles.RunCycle, req, timeout=timeout)

    def latest_cycle(self) -> cycle_pb2.GetLatestCycleResponse:
        return self.call("GetLatestCycle", self.cycles.GetLatestCycle, cycle_pb2.GetLatestCycleRequest())
