"""Server-streaming RPCs over HTTP: Server-Sent Events or newline-delimited JSON.

Any RPC whose annotation the gateway serves and that streams its responses
becomes a streaming route, with no code per RPC:

* ``Accept: text/event-stream`` gets Server-Sent Events: one ``data:`` line
  of contract JSON per message, a ``: heartbeat`` comment after
  ``HEARTBEAT_S`` of silence (so proxies and browsers keep the connection),
  and, when the stream ends with an error, an ``event: error`` whose data is
  the same body a unary call's error would have;
* anything else gets newline-delimited JSON, the grpc-gateway convention for
  server streams: ``{"result": …}`` per message, ``{"error": …}`` last if the
  stream fails.

Resumable streams follow one convention: a response message with a string
field ``revision`` and a request message with a string field ``after``.
Then each SSE message carries ``id: <revision>``, and a ``Last-Event-ID``
header (what ``EventSource`` sends when it reconnects) becomes ``after``.

The gateway waits for the stream's first message before answering: a call
refused at once (a bad argument) is an ordinary JSON error with its HTTP
status, never a 200 that then fails.
"""
from __future__ import annotations

import asyncio

import grpc
import orjson
from starlette.responses import Response, StreamingResponse

from opsledger.server.api import HttpRoute
from opsledger.server.gateway import mapping

HEARTBEAT_S = 15.0
RESUME_FIELD = "after"  # request field set from Last-Event-ID
REVISION_FIELD = "revision"  # response field sent as the SSE id


def wants_sse(accept: str) -> bool:
    return "text/event-stream" in accept.lower()


def resumable(route: HttpRoute) -> bool:
    req = route.method.input_type.fields_by_name.get(RESUME_FIELD)
    res = route.method.output_type.fields_by_name.get(REVISION_FIELD)
    string = 9  # FieldDescriptor.TYPE_STRING
    return req is not None and res is not None and req.type == string and res.type == string


def apply_last_event_id(route: HttpRoute, message, last_event_id: str | None) -> None:
    """EventSource reconnects with the URL it began with plus Last-Event-ID: resume there."""
    if last_event_id and resumable(route):
        setattr(message, RESUME_FIELD, last_event_id)


def _sse(route: HttpRoute, message) -> bytes:
    body = orjson.dumps(mapping.render_response(route, message))
    if resumable(route) and getattr(message, REVISION_FIELD):
        return b"id: " + getattr(message, REVISION_FIELD).encode() + b"\ndata: " + body + b"\n\n"
    return b"data: " + body + b"\n\n"


def _ndjson(route: HttpRoute, message) -> bytes:
    return orjson.dumps({"result": mapping.render_response(route, message)}) + b"\n"


async def respond(route: HttpRoute, call, accept: str) -> Response:
    """``call``: a started grpc.aio unary-stream call. It is cancelled when the
    HTTP client goes away (Starlette cancels the body on disconnect)."""
    sse = wants_sse(accept)
    stream = call.__aiter__()
    try:
        first = await stream.__anext__()
    except StopAsyncIteration:
        first = None
    except grpc.aio.AioRpcError as exc:
        status, payload = mapping.render_error(exc, route)
        return mapping.JSONResponse(payload, status_code=status)
    frame = _sse if sse else _ndjson

    async def body():
        pending = None
        try:
            if first is None:
                return
            yield frame(route, first)
            pending = asyncio.ensure_future(stream.__anext__())
            while True:
                done, _ = await asyncio.wait({pending}, timeout=HEARTBEAT_S if sse else None)
                if not done:
                    yield b": heartbeat\n\n"
                    continue
                try:
                    message = pending.result()
                except StopAsyncIteration:
                    return
                except grpc.aio.AioRpcError as exc:
                    _status, payload = mapping.render_error(exc, route)
                    if sse:
                        yield b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"
                    else:
                        yield orjson.dumps({"error": payload}) + b"\n"
                    return
                yield frame(route, message)
                pending = asyncio.ensure_future(stream.__anext__())
        finally:
            call.cancel()
            if pending is not None and not pending.done():
                pending.cancel()

    headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
    media = "text/event-stream" if sse else "application/x-ndjson"
    return StreamingResponse(body(), media_type=media, headers=headers)
