"""Test helpers: real servers (in a thread or a subprocess) on port 0."""
from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from opsledger.server.app import Opsledger
from opsledger.server.settings import Settings

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def grpc_health(target: str, timeout: float = 5) -> int:
    """grpc.health.v1 Check of the whole server: its ServingStatus number."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(target) as ch:
        return health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=timeout).status


def healthz(base: str, timeout: float = 5) -> int:
    """The HTTP status of the gateway's /healthz (503 is an answer, not an error)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


class ServerThread:
    """A real Opsledger (grpc.aio) on its own event loop in a thread, port 0."""

    def __init__(self, root: Path, clock=None, tracing=None, **settings) -> None:
        settings.setdefault("http_addr", None)
        self.settings = Settings(root=Path(root), grpc_addr="127.0.0.1:0", **settings)
        self.app = Opsledger(self.settings, clock=clock, tracing=tracing)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> ServerThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.app.start(), self.loop).result(30)
        return self

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.app.grpc_port}"

    def run(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self, grace: float = 1.0) -> None:
        try:
            self.run(self.app.stop(grace))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)


def ledger_lines(srv: ServerThread) -> tuple[list[bytes], list[bytes]]:
    """The server's stored request and result lines, through its ledger backend."""
    return srv.app.store.lines()


def opsledger_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "opsledger.server.cli", *args]


class ServerProcess:
    """``opsledger serve`` as a real subprocess; learns its ports from --ready-file.

    Used by the tests, the benchmarks and the reliability suite alike.
    """

    def __init__(self, root: Path, *extra: str, env: dict | None = None, grpc_addr: str = "127.0.0.1:0",
                 http: bool = True, log_level: str = "INFO", nofile: tuple[int, int] | None = None) -> None:
        self.root = Path(root)
        self.ready = self.root / f".ready-{os.getpid()}-{id(self)}.json"
        self.ready.unlink(missing_ok=True)
        self.log_path = self.root / f".server-{id(self)}.log"
        self.root.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        cmd = opsledger_cmd(
            "serve", "--root", str(self.root), "--grpc-addr", grpc_addr,
            *(("--http-addr", "127.0.0.1:0") if http else ("--no-http",)),
            "--ready-file", str(self.ready), *extra,
        )
        full_env = dict(os.environ, OPSLEDGER_LOG_LEVEL=log_level, **(env or {}))
        # nofile: the server's RLIMIT_NOFILE (soft, hard), set in the child before it starts.
        limit = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, nofile)) if nofile else None
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT, env=full_env,
                                     preexec_fn=limit)
        self.info = self._wait_ready()

    def _wait_ready(self, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready.exists():
                return json.loads(self.ready.read_text())
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.log()}")
            time.sleep(0.05)
        self.proc.kill()
        raise RuntimeError(f"server not ready in {timeout}s: {self.log()}")

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.info['grpc_port']}"

    @property
    def http_base(self) -> str:
        return f"http://127.0.0.1:{self.info['http_port']}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def terminate(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._log.close()
        return code


class OtlpReceiver:
    """A real OTLP/gRPC trace receiver on 127.0.0.1, port 0: keeps (service, span name, trace id)."""

    def __init__(self) -> None:
        from concurrent import futures

        import grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

        receiver = self

        class Service(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request, context):
                for resource_spans in request.resource_spans:
                    attrs = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                    for scope in resource_spans.scope_spans:
                        with receiver._lock:
                            receiver.spans += [(attrs.get("service.name"), s.name, s.trace_id.hex())
                                               for s in scope.spans]
                return trace_service_pb2.ExportTraceServiceResponse()

        self.spans: list[tuple[str | None, str, str]] = []
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    @property
    def env(self) -> dict[str, str]:
        """The standard settings that make a server export to this receiver."""
        return {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{self.port}", "OTEL_EXPORTER_OTLP_INSECURE": "true"}

    def stop(self) -> None:
        self._server.stop(0)
