"""Structured logs and Prometheus metrics: one place for both.

Logs: one JSON line per RPC and per HTTP request (structlog), readable key=value
lines when stderr is a terminal. Only names, codes, ids and timings are
logged: never a token, an Authorization header or a payload.

Metrics live in a registry per server (not the process-global one), so that
several servers in one process count apart. Besides the ``opsledger_*``
families, every RPC is counted under the names of the gRPC ecosystem
(``grpc_server_started_total``, ``grpc_server_handled_total``,
``grpc_server_handling_seconds``, ``grpc_server_msg_*_total``, labelled
``grpc_type``/``grpc_service``/``grpc_method``[/``grpc_code``], as the Go
grpc-prometheus middleware names them), so the usual gRPC dashboards work
unchanged; ``docs/grafana-dashboard.json`` is one.
"""
from __future__ import annotations

import logging
import sys
import time

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

from opsledger.server.errors import Unavailable

_SHARED = [
    structlog.stdlib.filter_by_level,  # a disabled level costs nothing further
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]
# Our events always go through stdlib logging: silent in a library or a test
# until configure_logging() gives them a handler.
structlog.configure(
    processors=_SHARED + [structlog.stdlib.ProcessorFormatter.wrap_for_formatter],  # type: ignore[arg-type]
    logger_factory=structlog.stdlib.LoggerFactory(),
    wrapper_class=structlog.stdlib.BoundLogger,
    cache_logger_on_first_use=True,
)


class RepeatFilter(logging.Filter):
    """At most ``burst`` identical warnings/errors per ``window`` seconds, then one summary line.

    A fault that repeats per accept or per request (descriptors exhausted, a
    disk gone) must not flood stderr: the first lines say what happened, the
    summary says how often. Lines below WARNING pass untouched (no cost).
    """

    def __init__(self, burst: int = 5, window: float = 10.0, clock=time.monotonic) -> None:
        super().__init__()
        self.burst, self.window, self.clock = burst, window, clock
        self._seen: dict[tuple, list] = {}  # key -> [window start, count]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is not ours to drop
            return True
        key = (record.name, record.levelno, text if not isinstance(record.msg, dict) else
               tuple(sorted((k, str(v)) for k, v in record.msg.items() if k != "timestamp")))
        now = self.clock()
        entry = self._seen.get(key)
        if entry is None or now - entry[0] >= self.window:
            suppressed = entry[1] - self.burst if entry is not None and entry[1] > self.burst else 0
            if len(self._seen) > 1000:
                self._seen.clear()  # bounded memory under many distinct messages
            self._seen[key] = [now, 1]
            if suppressed:
                record.msg = f"{text} [and {suppressed} identical lines suppressed in the last {self.window:g}s]"
                record.args = ()
            return True
        entry[1] += 1
        return entry[1] <= self.burst


def configure_logging(level: str = "INFO", json_lines: bool | None = None) -> None:
    """One renderer for our structlog events and every stdlib logger (grpc, uvicorn)."""
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    renderer = structlog.processors.JSONRenderer() if json_lines else structlog.dev.ConsoleRenderer(colors=False)
    shared = _SHARED
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        foreign_pre_chain=shared[1:],  # type: ignore[arg-type]  # stdlib records were level-filtered already
    ))
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, str(level).upper(), logging.INFO))
    logging.getLogger("uvicorn.access").disabled = True  # our middleware logs each request


def event_log(name: str):
    return structlog.get_logger(name)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.rpcs = Counter("opsledger_rpcs", "RPCs served, by method and status code",
                            ["method", "code"], registry=r)
        self.rpc_latency = Histogram("opsledger_rpc_latency_seconds", "RPC latency by method", ["method"],
                                     registry=r,
                                     buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60))
        self.http = Counter("opsledger_http_requests", "HTTP requests, by route and status",
                            ["method", "route", "status"], registry=r)
        self.fsync_latency = Histogram("opsledger_store_fsync_seconds", "write+fsync time of one group commit",
                                       registry=r, buckets=(.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .5))
        self.batch_size = Histogram("opsledger_store_batch_lines", "lines appended per group commit",
                                    registry=r, buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024))
        self.cycles = Counter("opsledger_cycles", "live cycles run, by result", ["result"], registry=r)
        self.read_only = Gauge("opsledger_store_read_only", "1 after a failed write or fsync", registry=r)
        self.in_progress = Gauge("opsledger_calls_in_progress", "calls being served, by budget (calls, long-polls)",
                                 ["budget"], registry=r)
        self.grpc = GrpcMetrics(r)
        self._store = None
        r.register(_TicketCollector(self))
        r.register(_ScrubCollector(self))

    def watch_store(self, store) -> None:
        """Batch sizes and write times from every commit; ticket counts at scrape time."""
        self._store = store
        store.on_batch(self._on_commit)

    def _on_commit(self, lines: int, seconds: float) -> None:
        self.batch_size.observe(lines)
        self.fsync_latency.observe(seconds)


class _ScrubCollector:
    """Progress of the background scrub of the checkpointed log prefix (JSONL ledger)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self):
        progress = getattr(self.metrics._store, "scrub_progress", None)
        if progress is None:
            return
        p = progress()
        total = GaugeMetricFamily("opsledger_scrub_bytes_total", "bytes of the logs the loaded checkpoint covers")
        total.add_metric([], p["bytes_total"])
        done = GaugeMetricFamily("opsledger_scrub_bytes_verified", "of those, bytes the scrub has verified")
        done.add_metric([], p["bytes_done"])
        state = GaugeMetricFamily("opsledger_scrub_state", "scrub state (1 for the current one)", labels=["state"])
        for name in ("none", "running", "done", "failed", "stopped"):
            state.add_metric([name], 1 if p["state"] == name else 0)
        yield from (total, done, state)


_GRPC_LABELS = ["grpc_type", "grpc_service", "grpc_method"]
# grpc-prometheus's default handling-time buckets, so dashboards' quantiles line up
_GRPC_BUCKETS = (.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)


def grpc_type(request_streaming: bool, response_streaming: bool) -> str:
    return {(False, False): "unary", (False, True): "server_stream",
            (True, False): "client_stream", (True, True): "bidi_stream"}[(request_streaming, response_streaming)]


class GrpcMetrics:
    """The server-side families of the gRPC ecosystem (go-grpc-prometheus names)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.started = Counter("grpc_server_started", "RPCs started on the server",
                               _GRPC_LABELS, registry=r)
        self.handled = Counter("grpc_server_handled", "RPCs completed on the server, regardless of success",
                               _GRPC_LABELS + ["grpc_code"], registry=r)
        self.handling = Histogram("grpc_server_handling_seconds",
                                  "time from the start of an RPC to its answer, by method",
                                  _GRPC_LABELS, registry=r, buckets=_GRPC_BUCKETS)
        self.received = Counter("grpc_server_msg_received", "messages received on the server, by method",
                                _GRPC_LABELS, registry=r)
        self.sent = Counter("grpc_server_msg_sent", "messages sent by the server, by method",
                            _GRPC_LABELS, registry=r)

    def call(self, full_method: str, kind: str) -> GrpcCall:
        """``/pkg.Service/Method`` -> the call's bound label sets (started counted now)."""
        service, _, method = full_method.lstrip("/").rpartition("/")
        labels = (kind, service, method)
        self.started.labels(*labels).inc()
        return GrpcCall(self, labels)


class GrpcCall:
    __slots__ = ("metrics", "labels")

    def __init__(self, metrics: GrpcMetrics, labels: tuple[str, str, str]) -> None:
        self.metrics, self.labels = metrics, labels

    def received(self) -> None:
        self.metrics.received.labels(*self.labels).inc()

    def sent(self) -> None:
        self.metrics.sent.labels(*self.labels).inc()

    def handled(self, code: str, seconds: float) -> None:
        self.metrics.handled.labels(*self.labels, code).inc()
        self.metrics.handling.labels(*self.labels).observe(seconds)


class _TicketCollector:
    """Tickets by current status, read from the index at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self):
        family = GaugeMetricFamily("opsledger_tickets", "tickets by current status", labels=["status"])
        store = self.metrics._store
        if store is not None:
            try:
                counts = store.counts()
            except Unavailable:  # a read-only store: its gauge says so; no counts this scrape
                counts = {}
            for status, n in counts.items():
                family.add_metric([status], n)
        yield family
