"""``opsledger worker``: ConsumeNext -> handle -> CompleteTicket, in a loop.

*No Execution*: the ledger only records. ``REQUEST_LIVE_CYCLE`` tickets run
one live cycle through RunCycle (DONE when the receipt says OK, else FAILED,
the receipt's snapshot ref as artifact); every other type goes to a
record-only handler. Attach a real handler by passing ``handlers``:

    def reconcile(ticket: dict, client) -> Outcome:
        ...  # do the work elsewhere, then say how it went
        return Outcome("DONE", "reconciled 42 positions", ["reports/recon/out.json"])

    Worker(client, "recon-1", handlers={"REQUEST_RECONCILE": reconcile}).run()

SIGTERM/SIGINT: the ticket in hand is finished and completed, then the
worker exits 0. While the server is away it reconnects with backoff.
"""
from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from google.protobuf import json_format

from opsledger.client.ledger_client import OpsledgerClient
from opsledger.client.tracing import ticket_span
from opsledger.v1 import cycle_pb2

log = logging.getLogger("opsledger.worker")


@dataclass
class Outcome:
    status: str  # DONE | FAILED
    message: str
    artifacts: list[str] = field(default_factory=list)


Handler = Callable[[dict, OpsledgerClient], Outcome]


def record_only(ticket: dict, _client: OpsledgerClient) -> Outcome:
    return Outcome("DONE", f"[MOCK_ONLY] Simulated {ticket['request_type']}")


def live_cycle(_ticket: dict, client: OpsledgerClient) -> Outcome:
    receipt = client.run_cycle().receipt
    result = cycle_pb2.CycleResult.Value.Name(receipt.result)
    text = (f"live cycle {receipt.cycle_id}: {result} / "
            f"{cycle_pb2.CycleDecision.Value.Name(receipt.decision)} / {cycle_pb2.CycleReason.Value.Name(receipt.reason)}")
    return Outcome("DONE" if result == "OK" else "FAILED", text, [receipt.snapshot_ref])


DEFAULT_HANDLERS: dict[str, Handler] = {"REQUEST_LIVE_CYCLE": live_cycle}


class Worker:
    def __init__(
        self,
        client: OpsledgerClient,
        processor_id: str,
        types: tuple[str, ...] = (),
        wait_seconds: float = 20.0,
        handlers: dict[str, Handler] | None = None,
        max_backoff: float = 5.0,
        tracer_provider=None,
    ) -> None:
        """``tracer_provider``: where handling spans go (OpenTelemetry's global one when None)."""
        self.client = client
        self.processor_id = processor_id
        self.types = types
        self.wait_seconds = wait_seconds
        self.handlers = {**DEFAULT_HANDLERS, **(handlers or {})}
        self.max_backoff = max_backoff
        self.tracer_provider = tracer_provider
        self.stop = threading.Event()
        self.handled = 0
        self._inflight = None

    def request_stop(self) -> None:
        """Finish the ticket in hand, claim no other; a pending long-poll is cancelled (it claims nothing)."""
        self.stop.set()
        inflight = self._inflight
        if inflight is not None:
            inflight.cancel()

    def install_signal_handlers(self) -> None:
        def ask_to_stop(signum, _frame):
            log.info("signal %d: finishing the ticket in hand, then exiting", signum)
            self.request_stop()

        signal.signal(signal.SIGTERM, ask_to_stop)
        signal.signal(signal.SIGINT, ask_to_stop)

    def _claim(self):
        """One ConsumeNext long-poll; None when a stop request cut it short."""
        future = self.client.consume_next_future(self.processor_id, self.types, self.wait_seconds)
        self._inflight = future
        try:
            if self.stop.is_set():
                future.cancel()
            return future.result()
        except (grpc.FutureCancelledError, grpc.RpcError):
            if self.stop.is_set():
                return None
            raise
        finally:
            self._inflight = None

    def handle(self, ticket: dict) -> Outcome:
        handler = self.handlers.get(ticket["request_type"], record_only)
        try:
            return handler(ticket, self.client)
        except grpc.RpcError as exc:
            # Not repeated: a call the server may have carried out is the caller's to retry.
            log.error("handler for %s failed: %s: %s", ticket["request_id"], exc.code().name, exc.details())
            return Outcome("FAILED", f"handler error: {exc.code().name}: {exc.details()}"[:2000])
        except Exception as exc:  # noqa: BLE001 - a failed handler is a FAILED ticket, not a dead worker
            log.exception("handler for %s failed", ticket["request_id"])
            return Outcome("FAILED", f"handler error: {type(exc).__name__}: {exc}"[:2000])

    def run_once(self) -> bool:
        """Claim and handle at most one ticket; True when one was handled."""
        reply = self._claim()
        if reply is None or not reply.claimed:
            return False
        ticket = json_format.MessageToDict(reply.ticket, preserving_proto_field_name=True)
        # The ticket's trace continues here: the handler's calls and the
        # completion carry it (a no-op without OpenTelemetry or a trace id).
        with ticket_span(ticket, self.tracer_provider):
            outcome = self.handle(ticket)
            return self._complete(reply, ticket, outcome)

    def _complete(self, reply, ticket: dict, outcome: Outcome) -> bool:
        try:
            self.client.complete(reply.request_id, outcome.status, self.processor_id, outcome.message, outcome.artifacts)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
                raise
            log.warning("ticket %s was finished by someone else (reaper?): %s", reply.request_id, exc.details())
            return True
        self.handled += 1
        log.info("ticket %s %s -> %s", reply.request_id, ticket["request_type"], outcome.status)
        return True

    def run(self, once: bool = False) -> int:
        backoff = 0.2
        while not self.stop.is_set():
            try:
                self.run_once()
                backoff = 0.2
            except grpc.RpcError as exc:
                if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise
                log.warning("server away (%s); retrying in %.1fs", exc.code().name, backoff)
                self.stop.wait(backoff)
                backoff = min(self.max_backoff, backoff * 2)
                continue
            if once:
                break
        return self.handled
