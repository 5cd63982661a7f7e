"""JSON <-> protobuf for the gateway, and gRPC errors -> legacy HTTP bodies.

Requests: the body (``body: "*"``), path variables and query parameters
become one request message through protobuf's ``json_format``; an unknown
field, a wrong type or an unknown enum value is a 400 naming the field.

Responses: the message as contract JSON (``server.common.contract_json``:
snake_case, every field present, unset optional ones ``null``), plus the
legacy extras below.
"""
from __future__ import annotations

import orjson
from google.protobuf import descriptor, json_format
from google.rpc import code_pb2, error_details_pb2

from server.api import HttpRoute
from server.common.contract_json import contract_dict
from server.rpc_status import decode_details

# Legacy keys that are not fields of the response message (SPEC §7), by RPC.
LEGACY_EXTRAS: dict[str, dict] = {
    "opsledger.v1.TicketService.GetBoard": {"error": None},
}

_ERROR_INFO = error_details_pb2.ErrorInfo.DESCRIPTOR.full_name

# google.rpc.Code -> HTTP status (the standard table of google/rpc/code.proto).
HTTP_STATUS: dict[int, int] = {
    code_pb2.OK: 200,
    code_pb2.CANCELLED: 499,
    code_pb2.UNKNOWN: 500,
    code_pb2.INVALID_ARGUMENT: 400,
    code_pb2.DEADLINE_EXCEEDED: 504,
    code_pb2.NOT_FOUND: 404,
    code_pb2.ALREADY_EXISTS: 409,
    code_pb2.PERMISSION_DENIED: 403,
    code_pb2.UNAUTHENTICATED: 401,
    code_pb2.RESOURCE_EXHAUSTED: 429,
    code_pb2.FAILED_PRECONDITION: 400,
    code_pb2.ABORTED: 409,
    code_pb2.OUT_OF_RANGE: 400,
    code_pb2.UNIMPLEMENTED: 501,
    code_pb2.INTERNAL: 500,
    code_pb2.UNAVAILABLE: 503,
    code_pb2.DATA_LOSS: 500,
}

VIEW_ERROR = "opsledger.v1.ViewError"
_BOOL_WORDS = {"true": True, "false": False, "1": True, "0": False}


class BadRequest(ValueError):
    """A request the gateway refuses itself (400), before any gRPC call."""


def _first_line(text: str) -> str:
    return str(text).strip().splitlines()[0] if str(text).strip() else "invalid"


def build_request(route: HttpRoute, body: dict | None, path: dict[str, str], query: list[tuple[str, str]]):
    """One request message from body, path variables and query parameters."""
    cls = route.request_class()
    fields = cls.DESCRIPTOR.fields_by_name
    data: dict = {}
    if body is not None:
        data.update(body)
    for name, value in path.items():
        if name in data and data[name] != value:
            raise BadRequest(f"{name}: path says {value!r}, body says {data[name]!r}")
        data[name] = value
    for name, value in query:
        field = fields.get(name)
        if field is None or name in path:
            raise BadRequest(f"{name}: unknown query parameter")
        if field.message_type is not None:
            raise BadRequest(f"{name}: an object, not a query parameter; send it in a JSON body")
        if field.type == descriptor.FieldDescriptor.TYPE_BOOL:
            if value.lower() not in _BOOL_WORDS:
                raise BadRequest(f"{name}: must be true or false")
            value = _BOOL_WORDS[value.lower()]
        if field.is_repeated:
            data.setdefault(name, []).append(value)
        elif name in data:
            raise BadRequest(f"{name}: given more than once")
        else:
            data[name] = value
    try:
        return json_format.ParseDict(data, cls())
    except json_format.ParseError as exc:
        raise BadRequest(_first_line(str(exc))) from None


def parse_body(raw: bytes) -> dict:
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body: not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise BadRequest("body: must be a JSON object")
    return body


def render_response(route: HttpRoute, message) -> dict:
    body = contract_dict(message)
    body.update(LEGACY_EXTRAS.get(route.key, {}))
    return body


def is_view(desc: descriptor.Descriptor) -> bool:
    """A view envelope: its own status and an ``error`` block (ViewError)."""
    error = desc.fields_by_name.get("error")
    return ("status" in desc.fields_by_name and error is not None
            and error.message_type is not None and error.message_type.full_name == VIEW_ERROR)


def render_error(exc, route: HttpRoute | None = None) -> tuple[int, dict]:
    """A grpc.aio error -> (HTTP status, legacy body).

    A view's refusal (ErrorInfo naming the envelope's schema) on a route
    answering a view is the envelope itself, status "error", as the legacy
    callers read it; every other error is the FAIL/CONFLICT body.
    """
    code_name = exc.code().name
    code = getattr(code_pb2, code_name, code_pb2.UNKNOWN)
    message = exc.details() or code_name
    details = decode_details(exc)
    conflict = next((item.get("metadata", {}).get("current_status") for item in details
                     if item["@type"] == _ERROR_INFO and item.get("reason") == "ILLEGAL_TRANSITION"), None)
    view = _view_error(route, details, message) if route is not None else None
    if view is not None:
        return HTTP_STATUS.get(code, 500), view
    if conflict is not None:
        return 409, {"result": "CONFLICT", "message": message, "current_status": conflict,
                     "code": code_name, "details": details}
    return HTTP_STATUS.get(code, 500), {"result": "FAIL", "message": message, "code": code_name, "details": details}


def _view_error(route: HttpRoute, details: list[dict], message: str) -> dict | None:
    desc = route.method.output_type
    if not is_view(desc):
        return None
    for item in details:
        metadata = item.get("metadata") or {}
        if item["@type"] == _ERROR_INFO and "schema" in metadata:
            envelope = route.response_class()(status="error")
            for key in ("schema", "asof"):
                if key in desc.fields_by_name:
                    setattr(envelope, key, metadata.get(key, ""))
            envelope.error.code = item.get("reason", "")
            envelope.error.message = message
            return render_response(route, envelope)
    return None


def fail_body(message: str, code: str) -> dict:
    return {"result": "FAIL", "message": message, "code": code, "details": []}
