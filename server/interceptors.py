"""gRPC server interceptors: one log line + metrics per call, bearer-token auth.

Which methods need the token comes from the protos (``opsledger.server.api``: every
RPC whose ``google.api.http`` verb is not GET changes something). Reads and
reflection stay open unless ``protect_reads`` is set; health is always open
(an orchestrator must never be locked out of it).
"""
from __future__ import annotations

import hmac
import re
import time

import grpc
from google.protobuf.message import DecodeError

from opsledger.server.observability import Metrics, event_log, grpc_type

log = event_log("opsledger.rpc")
HEALTH_PREFIX = "/grpc.health.v1.Health/"
# The in-process gateway proves itself with this metadata key (a per-process
# secret): only then is its x-forwarded-for taken as the client's address.
GATEWAY_KEY = "x-opsledger-gateway"
_CREDENTIALS = re.compile(r"([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*) +(\S+)")  # RFC 7235: scheme 1*SP token68


def _metadata(details: grpc.HandlerCallDetails, key: str) -> str | None:
    for k, v in details.invocation_metadata or ():
        if k == key:
            return v if isinstance(v, str) else v.decode("latin-1")
    return None


def _refusal(code: grpc.StatusCode, message: str, like: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    async def refuse(_request, context):
        await context.abort(code, message)

    kinds = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    make = kinds[(bool(like.request_streaming), bool(like.response_streaming))]
    return make(refuse, request_deserializer=like.request_deserializer,
                response_serializer=like.response_serializer)


def bearer(header: str | None) -> str | None:
    """The credentials of an ``Authorization: Bearer <token>`` value; the scheme is case-insensitive."""
    if header is None:
        return None
    m = _CREDENTIALS.fullmatch(header)
    if m is None or m.group(1).lower() != "bearer":
        return None
    return m.group(2)


def token_matches(header: str | None, token: str) -> bool:
    given = bearer(header)
    return given is not None and hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), token.encode("utf-8"))


class TokenAuth(grpc.aio.ServerInterceptor):
    """Mutating methods (and, with ``protect_reads``, every method but health) need the token."""

    def __init__(self, token: str, protected: frozenset[str], protect_reads: bool = False) -> None:
        self.token = token
        self.protected = protected
        self.protect_reads = protect_reads

    def guards(self, method: str) -> bool:
        if method.startswith(HEALTH_PREFIX):
            return False
        return self.protect_reads or method in self.protected

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None or not self.guards(details.method):
            return handler
        given = _metadata(details, "authorization")
        if given is None:
            return _refusal(grpc.StatusCode.UNAUTHENTICATED, "authorization: a Bearer token is required", handler)
        if not token_matches(given, self.token):
            return _refusal(grpc.StatusCode.UNAUTHENTICATED, "authorization: the token is not valid", handler)
        return handler


class Undecodable:
    """Stands in for a request whose bytes do not parse (garbage, a Struct nested too deeply).

    grpc.aio answers a raising deserializer with UNKNOWN and a logged stack
    trace; returning this instead lets the call answer INVALID_ARGUMENT.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason


def tolerant(deserializer):
    if deserializer is None:
        return None

    def decode(raw: bytes):
        try:
            return deserializer(raw)
        except DecodeError as exc:
            reason = str(exc).rsplit(": ", 1)[-1] or "malformed"
            if "MaxDepth" in reason or "recursion" in reason.lower():
                reason = "nested deeper than the protobuf parser's limit of 100 levels"
            return Undecodable(reason)

    return decode


async def _refuse_undecodable(request, context, method: str) -> None:
    """INVALID_ARGUMENT naming ``request`` for bytes that are not the method's message."""
    if isinstance(request, Undecodable):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                            f"request: not a valid {method.rsplit('/', 1)[-1]} message ({request.reason})")


def _ended_with(context) -> grpc.StatusCode:
    """The status a call that raised ends with (UNKNOWN when none was set)."""
    code = context.code() or grpc.StatusCode.UNKNOWN
    return grpc.StatusCode.UNKNOWN if isinstance(code, int) else code


class CallObserver(grpc.aio.ServerInterceptor):
    """One structured log line and the metrics of every unary call.

    ``via`` (the HTTP client's address) is logged only for calls from the
    in-process gateway, which proves itself with ``gateway_secret``: any
    other caller could write whatever it likes into x-forwarded-for.
    """

    def __init__(self, metrics: Metrics, gateway_secret: str | None = None) -> None:
        self.metrics = metrics
        self.gateway_secret = gateway_secret

    def _forwarded(self, details) -> str | None:
        proof = _metadata(details, GATEWAY_KEY)
        if self.gateway_secret is None or proof is None or not hmac.compare_digest(
                proof.encode("latin-1"), self.gateway_secret.encode()):
            return None
        return _metadata(details, "x-forwarded-for")

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None:
            return handler
        if handler.unary_unary is None:
            return self._stream(handler, details.method)
        inner = handler.unary_unary
        method = details.method
        forwarded = self._forwarded(details)
        grpc_metrics = self.metrics.grpc

        async def observed(request, context):
            started = time.perf_counter()
            call = grpc_metrics.call(method, "unary")
            code = grpc.StatusCode.OK
            try:
                await _refuse_undecodable(request, context, method)
                call.received()
                response = await inner(request, context)
                call.sent()
                return response
            except BaseException:
                code = _ended_with(context)
                raise
            finally:
                elapsed = time.perf_counter() - started
                name = method.rsplit("/", 1)[-1]
                call.handled(code.name, elapsed)
                self.metrics.rpcs.labels(name, code.name).inc()
                self.metrics.rpc_latency.labels(name).observe(elapsed)
                log.info(
                    "rpc",
                    method=method,
                    code=code.name,
                    duration_ms=round(elapsed * 1000, 3),
                    request_id=getattr(request, "request_id", None) or None,
                    processor_id=getattr(request, "processor_id", None) or None,
                    peer=context.peer(),
                    via=forwarded,
                )

        return grpc.unary_unary_rpc_method_handler(
            observed, request_deserializer=tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )

    def _stream(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        """Streaming calls (reflection, watches) get the gRPC-ecosystem metrics only."""
        kind = grpc_type(bool(handler.request_streaming), bool(handler.response_streaming))
        grpc_metrics = self.metrics.grpc

        def counted_requests(requests, call):
            async def each():
                async for message in requests:
                    call.received()
                    yield message
            return each()

        async def observed(request_or_iterator, context):
            started = time.perf_counter()
            call = grpc_metrics.call(method, kind)
            code = grpc.StatusCode.OK
            if handler.request_streaming:
                request_or_iterator = counted_requests(request_or_iterator, call)
            else:
                call.received()
            try:
                if not handler.request_streaming:
                    await _refuse_undecodable(request_or_iterator, context, method)
                if handler.response_streaming:
                    inner = handler.unary_stream or handler.stream_stream
                    answer = inner(request_or_iterator, context)
                    if hasattr(answer, "__aiter__"):
                        async for message in answer:
                            call.sent()
                            yield message
                    else:  # a coroutine that writes with context.write (or refuses)
                        await answer
                else:
                    inner = handler.stream_unary
                    response = await inner(request_or_iterator, context)
                    call.sent()
                    yield response
            except BaseException:
                code = _ended_with(context)
                raise
            finally:
                call.handled(code.name, time.perf_counter() - started)

        # A single request that is not the message is refused by _refuse_undecodable; a
        # stream of requests (reflection) keeps its own deserializer.
        deserializer = (handler.request_deserializer if handler.request_streaming
                        else tolerant(handler.request_deserializer))
        if handler.response_streaming:
            make = (grpc.stream_stream_rpc_method_handler if handler.request_streaming
                    else grpc.unary_stream_rpc_method_handler)
            return make(observed, request_deserializer=deserializer,
                        response_serializer=handler.response_serializer)

        async def unary_answer(request_or_iterator, context):
            async for response in observed(request_or_iterator, context):
                return response

        make = (grpc.stream_unary_rpc_method_handler if handler.request_streaming
                else grpc.unary_unary_rpc_method_handler)
        return make(unary_answer, request_deserializer=deserializer,
                    response_serializer=handler.response_serializer)
