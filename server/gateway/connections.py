"""HTTP connections that cannot wedge the server: a cap, a request deadline, health first.

- A request (headers and body) must arrive within ``request_timeout``
  seconds of the connection opening, or of its first byte on a kept-alive
  connection; else the connection is closed (half-open and slow clients
  hold no descriptor for long). Idle kept-alive connections are closed by
  uvicorn's keep-alive timeout as before.
- At most ``max_connections`` connections: one more evicts the oldest
  connection that has no request in progress (idle or still sending
  headers) and no unread bytes waiting in its socket (a client whose
  request arrived but is not parsed yet is live, not idle). When every connection is busy, up to HEALTH_EXTRA more are let
  in, and they may only ask for /healthz (anything else is 503); past that
  a connection is closed as soon as it is accepted.
"""
from __future__ import annotations

import asyncio
import select

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from opsledger.server.fdbudget import HEALTH_EXTRA
from opsledger.server.gateway.mapping import fail_response

HEALTH_PATH = "/healthz"


def _health_only(app):
    async def guarded(scope, receive, send):
        if scope["type"] != "http" or scope.get("path") == HEALTH_PATH:
            return await app(scope, receive, send)
        busy = fail_response(503, "server at its connection limit; retry later", "UNAVAILABLE",
                             headers={"connection": "close", "retry-after": "1"})
        await busy(scope, receive, send)

    return guarded


def _unread(transport: asyncio.Transport) -> bool:
    """Whether bytes (or the peer's close) wait unread on the connection's socket."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    try:
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return False


def guarded_protocol(max_connections: int, request_timeout: float) -> type[HttpToolsProtocol]:
    """A uvicorn protocol class (``Config(http=...)``) with these limits."""

    class GuardedHttp(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            self._opened = self.loop.time()
            self._deadline: asyncio.TimerHandle | None = None
            super().connection_made(transport)
            if len(self.connections) > max_connections and not self._evict_one_idle():
                if len(self.connections) > max_connections + HEALTH_EXTRA:
                    transport.abort()  # frees the descriptor now
                    return
                self.app = _health_only(self.app)
            self._arm()

        def _idle(self) -> bool:
            return (self.cycle is None or self.cycle.response_complete) and not self.pipeline

        def _evict_one_idle(self) -> bool:
            idle = [c for c in self.connections if c is not self and c._idle() and not c.transport.is_closing()]  # type: ignore[union-attr]
            for c in sorted(idle, key=lambda c: c._opened):  # type: ignore[union-attr]
                if _unread(c.transport):
                    continue  # its request is waiting in the socket, not yet parsed: a live client
                c.transport.abort()
                self.connections.discard(c)
                return True
            return False

        def _arm(self) -> None:
            if self._deadline is None:
                self._deadline = self.loop.call_later(request_timeout, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                self.transport.abort()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._opened = self.loop.time()  # a kept-alive connection in use again is not the oldest idle one
            self._arm()

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return GuardedHttp
