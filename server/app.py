"""The server process: store + grpc.aio services + HTTP gateway; start and stop.

Stop order (SIGTERM/SIGINT): health NOT_SERVING; the gateway finishes its
requests; the gRPC server refuses new calls and finishes in-flight ones
(bounded by ``grace``); the store's writer drains its queue and closes.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import tempfile
from pathlib import Path

import grpc
import uvicorn
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response
from starlette.routing import Route

from opsledger.client.limits import MAX_MESSAGE_BYTES
from opsledger.server.admission import Admission
from opsledger.server.api import mutating_methods
from opsledger.server.artifacts.select import artifacts_for
from opsledger.server.artifacts.store import ArtifactStore
from opsledger.server.common.atomic import atomic_replace
from opsledger.server.common.clock import Clock
from opsledger.server.cycle.runner import CycleRunner
from opsledger.server.cycle.service import CycleService, ledger_view
from opsledger.server.evidence.service import EvidenceService, Resolver
from opsledger.server.fdbudget import FD_RESERVE, connection_caps, raise_nofile_limit
from opsledger.server.interceptors import CallObserver, TokenAuth, token_matches
from opsledger.server.ledger.backend import LedgerBackend
from opsledger.server.ledger.backends import make_backend
from opsledger.server.ledger.service import TicketService
from opsledger.server.observability import Metrics, event_log
from opsledger.server.settings import Settings, SettingsError, check_addr, clean_token
from opsledger.server.tracing import TracedLedger, Tracing, from_environment
from opsledger.v1 import cycle_pb2, cycle_pb2_grpc, evidence_pb2, evidence_pb2_grpc, tickets_pb2, tickets_pb2_grpc

log = event_log("opsledger.server")
std_log = logging.getLogger("opsledger.server")

SERVICE_NAMES = (
    tickets_pb2.DESCRIPTOR.services_by_name["TicketService"].full_name,
    cycle_pb2.DESCRIPTOR.services_by_name["CycleService"].full_name,
    evidence_pb2.DESCRIPTOR.services_by_name["EvidenceService"].full_name,
)


def _is_loopback(addr: str) -> bool:
    host = addr.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(s: Settings) -> None:
    """Refuse a non-loopback bind without a token unless explicitly overridden."""
    exposed = [a for a in (s.grpc_addr, s.http_addr) if a and not _is_loopback(a)]
    if exposed and not s.token and not s.insecure_no_auth:
        raise SettingsError(
            f"refusing to listen on {', '.join(exposed)} without a token: set OPSLEDGER_TOKEN or "
            "--token-file, or pass --insecure-no-auth to accept unauthenticated writes from the network"
        )


_CANNOT_LISTEN = ("cannot listen there (the port is taken, or the host is not an address of this machine): "
                  "stop what holds the port or choose another address")


def _bind(add_port) -> int:
    """grpc's add_*_port raises a bare RuntimeError when the bind fails."""
    try:
        return add_port()
    except RuntimeError:
        return 0


def _probe(flag: str, addr: str) -> None:
    """Try the address first with a plain socket: a taken port is then named
    plainly (grpc's own bind failure is a bare RuntimeError plus a core log line)."""
    host, port = check_addr(flag, addr)
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise SettingsError(f"{flag} {addr}: host not found ({exc.strerror}): use an address of this machine") from None
    family, kind, proto, _name, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        try:
            sock.bind(sockaddr)
        except OSError as exc:
            raise SettingsError(f"{flag} {addr}: {exc.strerror}: {_CANNOT_LISTEN}") from None


class Opsledger:
    """One running server: ``await start()``, later ``await stop()``."""

    def __init__(self, settings: Settings, clock: Clock | None = None, tracing: Tracing | None = None) -> None:
        """``tracing``: None reads the standard OTEL_* settings (off unless an OTLP endpoint is set)."""
        self.settings = settings
        self.clock = clock or Clock()
        self.tracing: Tracing = tracing if tracing is not None else from_environment()
        self.metrics = Metrics()
        self.store: LedgerBackend | None = None
        self.tickets: TicketService | None = None
        self.grpc_server: grpc.aio.Server | None = None
        self.health = health.aio.HealthServicer()
        self.grpc_port: int | None = None
        self.http_port: int | None = None
        self._http: uvicorn.Server | None = None
        self._http_task: asyncio.Task | None = None
        self._gateway_channel: grpc.aio.Channel | None = None
        self._private_dir: str | None = None
        self._reaper_task: asyncio.Task | None = None
        self._health_task: asyncio.Task | None = None
        self._serving = False  # what health last published (set by _publish)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._gateway_secret = secrets.token_hex(16)  # proves a call came through our own gateway

    # -- start ----------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        s = self.settings
        _probe("--grpc-addr", s.grpc_addr)
        if s.http_addr:
            _probe("--http-addr", s.http_addr)
        s.token = clean_token(s.token, "token (OPSLEDGER_TOKEN or --token-file)")
        check_exposure(s)
        if s.protect_reads and not s.token:
            raise SettingsError("--protect-reads needs a token: set OPSLEDGER_TOKEN or --token-file")
        if s.insecure_no_auth and not s.token:
            log.warning("auth_off", message="--insecure-no-auth: anyone who can reach this server can write")
        jsonl = (s.store or "jsonl").strip() == "jsonl"
        self.store = make_backend(s.store, s.root, self.clock, fsync=(s.fsync == "always"),
                                  on_failure=self._store_failed,
                                  **(dict(checkpoint_interval=s.checkpoint_interval,
                                          accept_log_loss=s.accept_log_loss, scrub_when_told=True) if jsonl else {}))
        await asyncio.to_thread(self.store.open)
        if self.tracing.on:
            self.store = TracedLedger(self.store, self.tracing)
        for a in self.store.anomalies():
            log.warning("ledger_anomaly", file=a.file, line=a.line_no, reason=a.reason)
        self.metrics.watch_store(self.store)

        self.caps = connection_caps(s.http_max_connections if s.http_addr else 0, s.grpc_max_connections)
        if self.caps.scaled:
            log.warning("connection_caps_lowered", http=self.caps.http, grpc=self.caps.grpc,
                        nofile=self.caps.soft_limit, reserve=FD_RESERVE,
                        message="RLIMIT_NOFILE is low: connection caps lowered to keep descriptors for files")
        interceptors = [CallObserver(self.metrics, self._gateway_secret),
                        Admission(s.max_concurrent_rpcs, s.max_long_polls, self.metrics)]
        if self.tracing.on:
            interceptors.insert(0, self.tracing.grpc_server_interceptor())  # outermost: refusals get spans too
        if s.token:
            interceptors.append(TokenAuth(s.token, mutating_methods(), protect_reads=s.protect_reads))
        server = grpc.aio.server(
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
                ("grpc.max_allowed_incoming_connections", self.caps.grpc),
                # A connection that never finishes its HTTP/2 handshake holds a place under the
                # cap: let it go after the same deadline an HTTP request has (grpc's default is 120 s).
                ("grpc.server_handshake_timeout_ms", int(s.http_request_timeout * 1000)),
            ],
        )
        self.artifacts: ArtifactStore = artifacts_for(s.store, Path(s.root))
        await asyncio.to_thread(self.artifacts.recover)  # what a killed cycle left behind
        self.tickets = TicketService(self.store, self.clock, self.artifacts)
        tickets_pb2_grpc.add_TicketServiceServicer_to_server(self.tickets, server)
        self.runner = CycleRunner(self.artifacts, ledger_view(self.store), self.clock, s.bundle_max_age_s,
                                  s.bundle_key_file, span=self.tracing.span)
        cycle_pb2_grpc.add_CycleServiceServicer_to_server(
            CycleService(self.runner, self.metrics), server)
        evidence_pb2_grpc.add_EvidenceServiceServicer_to_server(
            EvidenceService(Resolver(self.artifacts, self.store, self.clock)), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            SERVICE_NAMES + (health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            server,
        )
        self.grpc_port = self._bind_grpc(server, s)
        private = None
        if s.http_addr and not s.grpc_target:
            # The in-process gateway reaches gRPC over a private Unix socket
            # (a 0700 folder), so it needs no TLS client identity of its own.
            self._private_dir = tempfile.mkdtemp(prefix="opsledger-")
            private = f"unix:{self._private_dir}/grpc.sock"
            server.add_insecure_port(private)
        await server.start()
        self.grpc_server = server
        await self._publish(health_pb2.HealthCheckResponse.SERVING)
        assert self.store is not None
        if not self.store.health().writable:
            # It failed while starting: the hop its failure made may have come before
            # the SERVING just set.
            await self._set_not_serving()
        start_scrub = getattr(self.store, "start_scrub", None)
        if start_scrub is not None:
            start_scrub()  # the checkpointed prefix is verified from now on, not during start-up
        if s.http_addr:
            await self._start_gateway(s.http_addr, s.grpc_target or private)  # type: ignore[arg-type]
        self._health_task = asyncio.create_task(self._follow_store_health())
        if s.reap_interval > 0:
            self._reaper_task = asyncio.create_task(self._reap_every(s.reap_interval))
        tickets = sum((await asyncio.to_thread(self.store.counts)).values())
        log.info(
            "started",
            grpc=f"{s.grpc_addr.rsplit(':', 1)[0]}:{self.grpc_port}",
            http=f"{s.http_addr.rsplit(':', 1)[0]}:{self.http_port}" if self.http_port else None,  # type: ignore[union-attr]
            root=str(Path(s.root).resolve()),
            fsync=s.fsync,
            auth=("on, reads too" if s.protect_reads else "on") if s.token else "off",
            nofile=self.caps.soft_limit,
            max_connections={"http": self.caps.http if self.http_port else None, "grpc": self.caps.grpc},
            tls="mutual" if s.tls_client_ca else ("on" if s.tls_cert else "off"),
            store=self.store.health().backend,
            tickets=tickets,
        )
        self._started = True
        if s.ready_file is not None:
            atomic_replace(Path(s.ready_file),
                           json.dumps({"grpc_port": self.grpc_port, "http_port": self.http_port}).encode())

    def _bind_grpc(self, server: grpc.aio.Server, s: Settings) -> int:
        if s.tls_cert:
            creds = grpc.ssl_server_credentials(
                [(Path(s.tls_key).read_bytes(), Path(s.tls_cert).read_bytes())],  # type: ignore[arg-type]
                root_certificates=Path(s.tls_client_ca).read_bytes() if s.tls_client_ca else None,
                require_client_auth=bool(s.tls_client_ca),
            )
            port = _bind(lambda: server.add_secure_port(s.grpc_addr, creds))
        else:
            port = _bind(lambda: server.add_insecure_port(s.grpc_addr))
        if port == 0:
            raise SettingsError(f"--grpc-addr {s.grpc_addr}: {_CANNOT_LISTEN}")
        return port

    async def _start_gateway(self, http_addr: str, grpc_target: str) -> None:
        from opsledger.server.gateway.app import build_app
        from opsledger.server.gateway.connections import guarded_protocol
        from opsledger.server.gateway.mapping import fail_response

        host, port = http_addr.rsplit(":", 1)
        host = host.strip("[]")
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that
        # say so, and without it keep-alive replies wait ~40 ms for delayed ACKs.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, int(port)))
        except OSError as exc:
            sock.close()
            raise SettingsError(f"--http-addr {http_addr}: {exc.strerror}: {_CANNOT_LISTEN}") from None
        sock.listen(1024)
        sock.setblocking(False)
        self.http_port = sock.getsockname()[1]
        traced = self.tracing.on
        self._gateway_channel = grpc.aio.insecure_channel(grpc_target, options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ], interceptors=self.tracing.grpc_client_interceptors() if traced else None)
        registry = self.metrics.registry

        s = self.settings
        store = self.store
        assert store is not None  # opened before the gateway starts

        async def metrics(request) -> Response:
            if s.protect_reads and not token_matches(request.headers.get("authorization"), s.token or ""):
                return fail_response(401, "authorization: a valid Bearer token is required", "UNAUTHENTICATED",
                                     headers={"www-authenticate": "Bearer"})
            # The ticket gauge asks the store at scrape time, which may wait for the ledger lock:
            # never on the event loop that serves health and every call.
            body = await asyncio.to_thread(generate_latest, registry)
            return Response(body, media_type=CONTENT_TYPE_LATEST)

        app = build_app(self._gateway_channel, extra_routes=[Route("/metrics", metrics, methods=["GET"])],
                        metrics=self.metrics, health_extra={"store": store.health().backend},
                        gateway_secret=None if s.grpc_target else self._gateway_secret, traced=traced)
        if traced:
            app = self.tracing.asgi(app)
        config = uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=s.grace,  # type: ignore[arg-type]
            http=guarded_protocol(self.caps.http, s.http_request_timeout),
            ssl_certfile=str(s.tls_cert) if s.tls_cert else None,
            ssl_keyfile=str(s.tls_key) if s.tls_key else None,
        )
        self._http = uvicorn.Server(config)
        # _serve, not serve(): serve() would take over SIGTERM/SIGINT, which
        # belong to serve_forever (see the stop order above).
        self._http_task = asyncio.create_task(self._http._serve(sockets=[sock]))
        while not self._http.started:
            if self._http_task.done():
                self._http_task.result()
                raise OSError(f"HTTP gateway did not start on {http_addr}")
            await asyncio.sleep(0.01)

    async def _reap_every(self, interval: float) -> None:
        from opsledger.server.ledger import reaper

        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self._reap_once, reaper)
            except Exception:  # noqa: BLE001 - the next round tries again; the log says why
                std_log.exception("scheduled reaper run failed")

    def _reap_once(self, reaper) -> None:
        # Replicas sharing a database take turns: whoever holds the reaper lock
        # reaps, the others skip this round (nothing to do twice).
        try_exclusive = getattr(self.artifacts, "try_exclusive", None)
        if try_exclusive is None:
            reaper.run(self.store, self.artifacts, self.clock)
            return
        with try_exclusive("reaper") as mine:
            if mine:
                reaper.run(self.store, self.artifacts, self.clock)

    def _store_failed(self, exc: BaseException) -> None:
        # Called from the writer thread: hop onto the loop to flip health.
        self.metrics.read_only.set(1)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._set_not_serving()))

    async def _publish(self, status) -> None:
        """Every service's health, and ``_serving`` saying what was published last."""
        self._serving = status == health_pb2.HealthCheckResponse.SERVING
        for name in ("",) + SERVICE_NAMES:
            await self.health.set(name, status)

    async def _set_not_serving(self) -> None:
        await self._publish(health_pb2.HealthCheckResponse.NOT_SERVING)

    async def _follow_store_health(self, every: float = 0.5) -> None:
        """Health follows the store both ways: a database that went away and came
        back (a networked backend) makes the server SERVING again on its own.
        It starts from what was published (a store that failed while starting is
        NOT_SERVING already), so its first look can bring SERVING back."""
        while True:
            await asyncio.sleep(every)
            writable = self.store.health().writable  # type: ignore[union-attr]
            if writable == self._serving:
                continue
            self.metrics.read_only.set(0 if writable else 1)
            await self._publish(health_pb2.HealthCheckResponse.SERVING if writable
                                else health_pb2.HealthCheckResponse.NOT_SERVING)

    # -- stop -----------------------------------------------------------------------
    async def stop(self, grace: float | None = None) -> None:
        grace = self.settings.grace if grace is None else grace
        await self.health.enter_graceful_shutdown()
        if self.tickets is not None:
            self.tickets.close_watchers()  # streams never end by themselves: end them, naming where to resume
        if self._health_task is not None:
            self._health_task.cancel()
        if self._reaper_task is not None:
            self._reaper_task.cancel()
        if self._http is not None:
            self._http.should_exit = True
            if self._http_task is not None:
                await self._http_task
            if self._gateway_channel is not None:
                await self._gateway_channel.close()
        if self.grpc_server is not None:
            await self.grpc_server.stop(grace)
        if self.store is not None:
            await asyncio.to_thread(self.store.close)
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)
        await asyncio.to_thread(self.tracing.shutdown)  # the last spans are exported
        if self._started:
            log.info("stopped")


async def serve_forever(settings: Settings) -> int:
    raise_nofile_limit()
    app = Opsledger(settings)
    # Handlers first: start() writes the ready file, and a SIGTERM sent as soon
    # as it appears must drain like any other, not kill the process.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await app.start()
    except BaseException:
        await app.stop(0)  # a start that fails half-way leaves no port, thread or file open
        raise
    await stop.wait()
    log.info("draining", grace_s=settings.grace, pid=os.getpid())
    await app.stop()
    return 0
