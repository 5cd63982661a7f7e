"""Trace context on the client side, when OpenTelemetry's API is installed.

The client package needs no OpenTelemetry: without ``opentelemetry-api``
every function here is a no-op. With it, each call carries the caller's
current trace context as W3C ``traceparent`` metadata (so a submit made
inside a span records that trace id), and a worker handles each ticket
inside the ticket's own trace (``ticket_span``), so its calls join it.
"""
from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator
from typing import Any

try:
    from opentelemetry import propagate, trace
except ImportError:  # optional: the client runs without it
    trace = None  # type: ignore[assignment]
    propagate = None  # type: ignore[assignment]

_TRACE_ID = re.compile(r"[0-9a-f]{32}")


def available() -> bool:
    return trace is not None


def with_trace_context(metadata: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """``metadata`` plus the current trace context, if there is a valid one."""
    if trace is None or not trace.get_current_span().get_span_context().is_valid:
        return metadata
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return metadata + tuple(carrier.items())


def ticket_parent(trace_id: str | None, request_id: str) -> Any:
    """A remote parent in the ticket's trace, or None (no OpenTelemetry, no valid trace id).

    The ledger keeps only the trace id; the parent's span id is derived from
    the ticket id, so the handling spans of one ticket share one parent.
    """
    if trace is None or not trace_id or not _TRACE_ID.fullmatch(trace_id) or int(trace_id, 16) == 0:
        return None
    span_id = int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:8], "big") or 1
    return trace.SpanContext(int(trace_id, 16), span_id, is_remote=True,
                             trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))


@contextlib.contextmanager
def ticket_span(ticket: dict, tracer_provider: Any = None) -> Iterator[None]:
    """Handle ``ticket`` inside its trace: a ``handle <type>`` span when a tracer
    provider records, else the ticket's trace context alone (calls still carry it)."""
    parent = ticket_parent(ticket.get("trace_id"), ticket["request_id"])
    if parent is None:
        yield
        return
    parent_context = trace.set_span_in_context(trace.NonRecordingSpan(parent))
    tracer = trace.get_tracer("opsledger.worker", tracer_provider=tracer_provider)
    span = tracer.start_span(f"handle {ticket['request_type']}", context=parent_context,
                             kind=trace.SpanKind.CONSUMER,
                             attributes={"opsledger.request_id": ticket["request_id"],
                                         "opsledger.request_type": ticket["request_type"]})
    current = span if span.get_span_context().is_valid else trace.NonRecordingSpan(parent)
    try:
        with trace.use_span(current, end_on_exit=False, record_exception=True, set_status_on_exception=True):
            yield
    finally:
        span.end()
