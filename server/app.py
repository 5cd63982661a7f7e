"""The server process: store + grpc.aio services (+ gateway), start and stop."""
from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
from pathlib import Path

import uvicorn

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from opsledger.v1 import cycle_pb2, cycle_pb2_grpc, tickets_pb2, tickets_pb2_grpc
from server.common.atomic import atomic_replace
from server.common.clock import Clock
from server.cycle.runner import CycleRunner
from server.cycle.service import CycleService, ledger_view
from server.ledger.service import TicketService
from server.ledger.store import TicketStore
from server.settings import MAX_MESSAGE_BYTES, Settings

log = logging.getLogger("opsledger.server")

SERVICE_NAMES = (
    tickets_pb2.DESCRIPTOR.services_by_name["TicketService"].full_name,
    cycle_pb2.DESCRIPTOR.services_by_name["CycleService"].full_name,
)


class Opsledger:
    """One running server: call ``start()``, later ``stop()``."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or Clock()
        self.store: TicketStore | None = None
        self.grpc_server: grpc.aio.Server | None = None
        self.health = health.aio.HealthServicer()
        self.grpc_port: int | None = None
        self.http_port: int | None = None
        self._http: uvicorn.Server | None = None
        self._http_task: asyncio.Task | None = None
        self._http_socket: socket.socket | None = None
        self._gateway_channel: grpc.aio.Channel | None = None
        self._reaper_task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        s = self.settings
        self.store = TicketStore(
            s.root, self.clock, fsync=(s.fsync == "always"), on_failure=self._store_failed
        )
        await asyncio.to_thread(self.store.open)
        for anomaly in self.store.anomalies:
            log.warning("ledger anomaly %s:%d %s", anomaly.file, anomaly.line_no, anomaly.reason)
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=s.max_concurrent_rpcs,
        )
        tickets_pb2_grpc.add_TicketServiceServicer_to_server(TicketService(self.store, self.clock), server)
        self.runner = CycleRunner(
            s.root, ledger_view(self.store), self.clock, s.bundle_max_age_s, s.bundle_key_file
        )
        cycle_pb2_grpc.add_CycleServiceServicer_to_server(CycleService(self.runner, self.store), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            SERVICE_NAMES + (health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            server,
        )
        self.grpc_port = server.add_insecure_port(s.grpc_addr)
        if self.grpc_port == 0:
            raise OSError(f"could not bind gRPC address {s.grpc_addr}")
        await server.start()
        self.grpc_server = server
        for name in ("",) + SERVICE_NAMES:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        host = s.grpc_addr.rsplit(":", 1)[0]
        if s.http_addr:
            await self._start_gateway(s.http_addr, s.grpc_target or f"127.0.0.1:{self.grpc_port}")
        log.info(
            "opsledger serving gRPC on %s:%d, HTTP on %s, root %s, fsync %s",
            host, self.grpc_port, f"{s.http_addr.rsplit(':', 1)[0]}:{self.http_port}" if self.http_port else "off",
            Path(s.root).resolve(), s.fsync,
        )
        if s.reap_interval > 0:
            self._reaper_task = asyncio.create_task(self._reap_every(s.reap_interval))
        if s.ready_file is not None:
            atomic_replace(
                Path(s.ready_file),
                json.dumps({"grpc_port": self.grpc_port, "http_port": self.http_port}).encode(),
            )

    async def _start_gateway(self, http_addr: str, grpc_target: str) -> None:
        from server.gateway.app import build_app

        host, port = http_addr.rsplit(":", 1)
        sock = socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), int(port)))
        sock.listen(1024)
        sock.setblocking(False)
        self._http_socket = sock
        self.http_port = sock.getsockname()[1]
        self._gateway_channel = grpc.aio.insecure_channel(grpc_target)
        app = build_app(self._gateway_channel)
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off",
                                timeout_graceful_shutdown=self.settings.grace)
        self._http = uvicorn.Server(config)
        # _serve, not serve(): serve() would take over SIGTERM/SIGINT, which
        # belong to serve_forever (gRPC drains first, then HTTP).
        self._http_task = asyncio.create_task(self._http._serve(sockets=[sock]))
        while not self._http.started:
            if self._http_task.done():
                self._http_task.result()
                raise OSError(f"HTTP gateway did not start on {http_addr}")
            await asyncio.sleep(0.01)

    async def _reap_every(self, interval: float) -> None:
        from server.ledger import reaper

        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(reaper.run, self.store, self.clock)
            except Exception:  # noqa: BLE001 - the next round tries again; the log says why
                log.exception("scheduled reaper run failed")

    def _store_failed(self, exc: BaseException) -> None:
        # Called from the writer thread: hop onto the loop to flip health.
        if self._loop is not None:
            self._loop.call_soon_threadsafe(
                lambda: asyncio.ensure_future(self._set_not_serving())
            )

    async def _set_not_serving(self) -> None:
        for name in ("",) + SERVICE_NAMES:
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

    async def stop(self, grace: float | None = None) -> None:
        """Health NOT_SERVING, refuse new calls, finish in-flight ones, close the store."""
        await self.health.enter_graceful_shutdown()
        if self._reaper_task is not None:
            self._reaper_task.cancel()
        if self._http is not None:
            self._http.should_exit = True
            await self._http_task
            await self._gateway_channel.close()
        if self.grpc_server is not None:
            await self.grpc_server.stop(self.settings.grace if grace is None else grace)
        if self.store is not None:
            await asyncio.to_thread(self.store.close)
        log.info("opsledger stopped")


async def serve_forever(settings: Settings) -> int:
    app = Opsledger(settings)
    await app.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("signal received: draining (grace %.1fs)", settings.grace)
    await app.stop()
    return 0
