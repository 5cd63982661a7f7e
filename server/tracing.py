"""Trace context (OpenTelemetry): one span per RPC, HTTP request, ledger commit and cycle step.

Off by default, and then free: no interceptor, no middleware, no span is
made (``Tracing.on`` is False and every hook is skipped). It turns on when
the standard OpenTelemetry settings ask for an OTLP export:
``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is
set, ``OTEL_SDK_DISABLED`` is not true and ``OTEL_TRACES_EXPORTER`` is unset
or ``otlp``. ``OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL`` picks ``grpc`` (the
default of OpenTelemetry's Python SDK) or ``http/protobuf``; the exporters
read their other ``OTEL_EXPORTER_OTLP_*`` settings (headers, timeout,
certificates) themselves, ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``
name the service (``opsledger`` unless set), ``OTEL_TRACES_SAMPLER`` samples.

Whether tracing is on or off, a caller's W3C ``traceparent`` is what a submit
without a ``trace_id`` records (``carried_trace_id``): the stored data never
depends on this setting.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_W3C = TraceContextTextMapPropagator()
# Set by the gateway when the traceparent it forwards was made by its own HTTP
# span rather than sent by the HTTP caller: such a trace is not the caller's.
MINTED_KEY = "x-opsledger-trace-minted"


def carried_trace_id(metadata: Sequence[tuple[str, Any]] | None) -> str | None:
    """The trace id (32 lowercase hex digits) of the caller's W3C ``traceparent``, if valid."""
    carrier: dict[str, str] = {}
    for key, value in metadata or ():
        if key in ("traceparent", "tracestate", MINTED_KEY):
            carrier[key] = value if isinstance(value, str) else value.decode("latin-1")
    if "traceparent" not in carrier or MINTED_KEY in carrier:
        return None
    context = trace.get_current_span(_W3C.extract(carrier)).get_span_context()
    return trace.format_trace_id(context.trace_id) if context.is_valid else None


class Tracing:
    """The server's tracer, or nothing (``on`` False) when tracing is off."""

    def __init__(self, provider: Any = None, owned: bool = False) -> None:
        self.provider = provider
        self.owned = owned  # made from the environment: ours to flush and shut down
        self.tracer = provider.get_tracer("opsledger") if provider is not None else None

    @property
    def on(self) -> bool:
        return self.tracer is not None

    def span(self, name: str, **attributes: Any) -> contextlib.AbstractContextManager:
        """A child span of the current one; a no-op context when tracing is off."""
        if self.tracer is None:
            return contextlib.nullcontext()
        return self.tracer.start_as_current_span(name, attributes=attributes)

    def grpc_server_interceptor(self) -> Any:
        from opentelemetry.instrumentation.grpc import aio_server_interceptor

        return aio_server_interceptor(tracer_provider=self.provider)

    def grpc_client_interceptors(self) -> list:
        from opentelemetry.instrumentation.grpc import aio_client_interceptors

        return aio_client_interceptors(tracer_provider=self.provider)

    def asgi(self, app: Any) -> Any:
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        return OpenTelemetryMiddleware(app, tracer_provider=self.provider, exclude_spans=["receive", "send"])

    def shutdown(self) -> None:
        if self.owned and self.provider is not None:
            self.provider.shutdown()  # exports what is still queued


OFF = Tracing()


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def requested(env: Mapping[str, str]) -> bool:
    """Do the standard OTEL_* settings ask for an OTLP trace export?"""
    if _truthy(env.get("OTEL_SDK_DISABLED")):
        return False
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() not in ("otlp", ""):
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


class TracingSettingError(ValueError):
    pass


def from_environment(env: Mapping[str, str] | None = None) -> Tracing:
    """``OFF``, or a tracer exporting by OTLP in batches, as the OTEL_* settings say."""
    env = os.environ if env is None else env
    if not requested(env):
        return OFF
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "grpc").strip().lower()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    elif protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # type: ignore[assignment]
    else:
        raise TracingSettingError(f"OTEL_EXPORTER_OTLP_PROTOCOL {protocol!r}: must be grpc or http/protobuf")
    attributes = {} if env.get("OTEL_SERVICE_NAME") or "service.name=" in env.get("OTEL_RESOURCE_ATTRIBUTES", "") \
        else {"service.name": "opsledger"}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return Tracing(provider, owned=True)


class TracedLedger:
    """A ledger backend whose commands each get a ``ledger commit`` span.

    The span covers the command's wait in the group commit and the durable
    write; everything else is the backend's own (attributes are delegated).
    Only wrapped around the backend when tracing is on.
    """

    def __init__(self, backend: Any, tracing: Tracing) -> None:
        self._backend = backend
        self._tracing = tracing

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def _span(self, command: Any) -> contextlib.AbstractContextManager:
        return self._tracing.span("ledger commit", **{
            "opsledger.ledger.backend": self._backend.name,
            "opsledger.ledger.command": type(command).__name__,
        })

    async def run(self, command: Any) -> Any:
        with self._span(command):
            return await self._backend.run(command)

    def call(self, command: Any, timeout: float | None = None) -> Any:
        with self._span(command):
            return self._backend.call(command, timeout)
