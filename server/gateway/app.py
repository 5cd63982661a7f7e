"""The HTTP gateway: a Starlette app whose routes come from the protos.

Every request becomes a call on a grpc.aio channel to the gRPC server, so
every rule of the server (validation, auth, limits) applies unchanged; the
``Authorization`` header travels as gRPC metadata.
"""
from __future__ import annotations

import asyncio
import re
import time
from collections import defaultdict
from pathlib import Path

import grpc
from google.protobuf import descriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from opsledger.client.limits import MAX_MESSAGE_BYTES
from opsledger.server.api import HttpRoute, package_services, routes_of
from opsledger.server.gateway import mapping, streaming
from opsledger.server.gateway.mapping import JSONResponse, fail_response
from opsledger.server.gateway.openapi import openapi_document
from opsledger.server.interceptors import GATEWAY_KEY
from opsledger.server.observability import event_log
from opsledger.server.tracing import MINTED_KEY, carried_trace_id

_access = event_log("opsledger.http")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
STATIC = Path(__file__).resolve().parent.parent / "static"  # the board page, shipped in the package
CALL_TIMEOUT_S = 330.0  # above every server-side wait (RunCycle queueing, ConsumeNext)
_JSON_TYPES = ("application/json", "application/x-www-form-urlencoded")
_CONTENT_TYPE_RULE = ("must be application/json, application/*+json or application/x-www-form-urlencoded "
                      "(a JSON object either way) when a body is sent")


async def _disconnected(request: Request) -> None:
    """Returns once the client has gone (the body was read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _unless_disconnected(request: Request, upstream):
    """The upstream call's answer, or None after cancelling it because the client left.

    A client that closes its connection (a long-poll given up, a timeout)
    cancels the gRPC call, exactly as a gRPC caller's cancellation would:
    a ConsumeNext still waiting claims nothing.
    """
    answer = asyncio.ensure_future(_await(upstream))
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({answer, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not answer.done():
            upstream.cancel()  # the gRPC call itself: the server sees CANCELLED
            answer.cancel()
    if answer.cancelled():
        return None
    return answer.result()


async def _await(call):
    return await call


def _content_type_ok(request: Request) -> bool:
    # curl -d sends x-www-form-urlencoded; the body must still be a JSON object.
    value = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return value in _JSON_TYPES or (value.startswith("application/") and value.endswith("+json"))


class _TooLarge(Exception):
    """A request over the message limit, as JSON bytes or as the protobuf they make."""


def _too_large(message: str) -> Response:
    # One shape for both limits: the request is too large, not a server out of resources.
    return fail_response(413, message, "RESOURCE_EXHAUSTED", ("body", "over the message size limit"))


async def _read_body(request: Request) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_MESSAGE_BYTES:
        raise _TooLarge(f"body over {MAX_MESSAGE_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_MESSAGE_BYTES:
            raise _TooLarge(f"body over {MAX_MESSAGE_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _trace_metadata(request: Request, traced: bool) -> list[tuple[str, str]]:
    headers = [(k, request.headers[k]) for k in ("traceparent", "tracestate")
               if k in request.headers and _PRINTABLE_ASCII.fullmatch(request.headers[k])]
    if traced:
        # The channel's interceptor sends the HTTP span's context; when the
        # caller sent none, that trace is ours, not the caller's.
        return [] if carried_trace_id(headers) else [(MINTED_KEY, "1")]
    return headers


def build_app(
    channel: grpc.aio.Channel,
    services: list[descriptor.ServiceDescriptor] | None = None,
    extra_routes: list[Route] | None = None,
    metrics=None,
    health_extra: dict | None = None,
    gateway_secret: str | None = None,
    traced: bool = False,
) -> Starlette:
    """``health_extra``: fields added to every ``/healthz`` body (the ledger backend in use).

    ``traced``: the app runs inside OpenTelemetry's ASGI middleware and its
    channel injects the HTTP span's context; otherwise a caller's W3C
    ``traceparent``/``tracestate`` headers are forwarded as they came."""
    http_routes = routes_of(services if services is not None else package_services())
    literal_paths = {r.starlette_path for r in http_routes if r.is_literal}
    calls = {
        r.key: (channel.unary_stream if r.method.server_streaming else channel.unary_unary)(  # type: ignore[call-arg]
            r.full_method,
            request_serializer=r.request_class().SerializeToString,
            response_deserializer=r.response_class().FromString,
            _registered_method=True,  # as generated stubs do: the call skips per-call method lookup
        )
        for r in http_routes
    }

    async def call(route: HttpRoute, request: Request) -> Response:
        try:
            raw = await _read_body(request) if route.body else b""
        except _TooLarge as exc:
            return _too_large(str(exc))
        # An empty body means "fields from the query string" (SPEC §7; legacy callers send
        # POST ...?confirm=true with no body and no Content-Type); a body, when
        # sent, must be JSON and is then the only source of body fields.
        body_sent = bool(raw.strip())
        if body_sent and not _content_type_ok(request):
            return fail_response(415, "content-type: must be application/json when a body is sent",
                                 "INVALID_ARGUMENT", ("content-type", _CONTENT_TYPE_RULE))
        try:
            body = mapping.parse_body(raw) if body_sent else None
            query = list(request.query_params.multi_items())
            if body_sent and query:
                # Never merged, never silently dropped: ?dry_run=true beside a body
                # would otherwise run the real thing.
                raise mapping.BadRequest(query[0][0], "query parameters are not read when a JSON body is sent; "
                                                      "put every field in the body")
            message = mapping.build_request(route, body, dict(request.path_params), query)
        except mapping.BadRequest as exc:
            return fail_response(400, str(exc), "INVALID_ARGUMENT", (exc.field, exc.description))
        if message.ByteSize() > MAX_MESSAGE_BYTES:
            # JSON can be far smaller than its protobuf (a list of zeros).
            return _too_large(f"body: encodes to {message.ByteSize()} bytes, over the {MAX_MESSAGE_BYTES}-byte "
                              "message limit")
        metadata = []
        auth = request.headers.get("authorization")
        if auth:
            # gRPC metadata is printable ASCII; anything else could never be a valid token.
            if not _PRINTABLE_ASCII.fullmatch(auth):
                return fail_response(400, "authorization: header must be printable ASCII", "INVALID_ARGUMENT",
                                     ("authorization", "header must be printable ASCII"))
            metadata.append(("authorization", auth))
        metadata += _trace_metadata(request, traced)
        if request.client and gateway_secret:
            # The server trusts x-forwarded-for only with the in-process gateway's secret.
            metadata += [("x-forwarded-for", request.client.host), (GATEWAY_KEY, gateway_secret)]
        if route.method.server_streaming:  # no deadline: the stream lasts while the client listens
            streaming.apply_last_event_id(route, message, request.headers.get("last-event-id"))
            return await streaming.respond(route, calls[route.key](message, metadata=metadata),
                                           request.headers.get("accept", ""))
        try:
            reply = await _unless_disconnected(
                request, calls[route.key](message, timeout=CALL_TIMEOUT_S, metadata=metadata))
            if reply is None:
                return Response(status_code=499)  # nobody is left to read it
        except grpc.aio.AioRpcError as exc:
            status, payload = mapping.render_error(exc, route)
            return JSONResponse(payload, status_code=status)
        return JSONResponse(mapping.render_response(route, reply))

    def endpoint_for(by_verb: dict[str, HttpRoute], templated: bool):
        async def endpoint(request: Request) -> Response:
            if templated and request.url.path in literal_paths:
                # A literal path never falls through to a template (e.g. GET /api/tickets/consume).
                return fail_response(405, f"method {request.method} not allowed on {request.url.path}", "UNIMPLEMENTED")
            return await call(by_verb[request.method], request)

        return endpoint

    grouped: dict[str, dict[str, HttpRoute]] = defaultdict(dict)
    for r in http_routes:
        grouped[r.starlette_path][r.verb] = r
    routes = []
    for path, by_verb in grouped.items():
        templated = not next(iter(by_verb.values())).is_literal
        routes.append(Route(path, endpoint_for(by_verb, templated), methods=list(by_verb)))

    health = health_pb2_grpc.HealthStub(channel)

    async def healthz(_request: Request) -> Response:
        try:
            reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        except grpc.aio.AioRpcError as exc:
            return JSONResponse({"status": "UNREACHABLE", "message": exc.details()}, status_code=503)
        name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        return JSONResponse({"status": name, **(health_extra or {})}, status_code=200 if name == "SERVING" else 503)

    document = openapi_document(http_routes)

    async def openapi(_request: Request) -> Response:
        return JSONResponse(document)

    async def http_error(_request: Request, exc: HTTPException) -> Response:
        codes = {404: "NOT_FOUND", 405: "UNIMPLEMENTED"}
        message = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, exc.detail)
        return fail_response(exc.status_code, message, codes.get(exc.status_code, "UNKNOWN"))

    async def board_page(_request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    async def favicon(_request: Request) -> Response:
        # Browsers and tools ask for /favicon.ico whatever the page says: answer, not 404.
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    routes = routes + [
        Route("/", board_page, methods=["GET"]),
        Route("/favicon.ico", favicon, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),  # type: ignore[list-item]
        Route("/healthz", healthz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *(extra_routes or []),
    ]
    async def unexpected(_request: Request, exc: Exception) -> Response:
        _access.error("gateway_error", error=f"{type(exc).__name__}: {exc}")
        return fail_response(500, "internal error; see the server log", "INTERNAL")

    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: unexpected})  # type: ignore[dict-item]
    return AccessLog(app, metrics) if metrics is not None else app  # type: ignore[return-value]


class AccessLog:
    """One structured log line and a counter per HTTP request (pure ASGI).

    Logs method, route template, status, duration and peer: never headers
    (so never the Authorization header) and never bodies.
    """

    def __init__(self, app, metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = {"code": 500}

        async def send_and_note(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.http.labels(scope["method"], route, str(status["code"])).inc()
            client = scope.get("client")
            _access.info(
                "http",
                method=scope["method"],
                route=route,
                status=status["code"],
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
                request_id=(scope.get("path_params") or {}).get("request_id"),
                peer=f"{client[0]}:{client[1]}" if client else None,
            )
