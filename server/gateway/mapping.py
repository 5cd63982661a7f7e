"""JSON <-> protobuf for the gateway, and gRPC errors -> legacy HTTP bodies.

Requests: the body (``body: "*"``), path variables and query parameters
become one request message through protobuf's ``json_format``. The body is
held to the contract's own shape first (``check_body``): snake_case field
names, enum names (never numbers), JSON types as the field's, no repeated
keys, REQUIRED fields present and not null. Anything else is a 400 whose
BadRequest detail names the field.

Responses: the message as contract JSON (``opsledger.server.common.contract_json``:
snake_case, every field present, unset optional ones ``null``), plus the
legacy extras below.
"""
from __future__ import annotations

import re

import orjson
from google.api import field_behavior_pb2
from google.protobuf import descriptor, json_format
from google.rpc import code_pb2, error_details_pb2
from starlette.responses import Response

from opsledger.server.api import HttpRoute
from opsledger.server.common import strict_json
from opsledger.server.common.contract_json import JSON_VALUES, STRUCT, UNSPECIFIED, contract_dict
from opsledger.server.rpc_status import TRANSITION_KEYS, decode_details

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
FD = descriptor.FieldDescriptor
_INTEGERS = {FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_UINT32, FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_UINT64,
             FD.TYPE_FIXED32, FD.TYPE_FIXED64, FD.TYPE_SFIXED32, FD.TYPE_SFIXED64}
_NUMBERS = {FD.TYPE_DOUBLE, FD.TYPE_FLOAT}


class BadRequest(ValueError):
    """A request the gateway refuses itself (400), before any gRPC call; names the field."""

    def __init__(self, field: str, description: str | None = None) -> None:
        if description is None:  # one "field: rule" text
            field, _, description = field.partition(": ")
        self.field = field
        self.description = description
        super().__init__(f"{field}: {description}")


def required(field: descriptor.FieldDescriptor) -> bool:
    behaviors = field.GetOptions().Extensions[field_behavior_pb2.field_behavior]
    return field_behavior_pb2.REQUIRED in behaviors


def _scalar_problem(f: descriptor.FieldDescriptor, value) -> str | None:
    if f.enum_type is not None:
        names = [v.name for v in f.enum_type.values if v.name != UNSPECIFIED]
        if not isinstance(value, str):
            return f"must be an enum name ({', '.join(names)}), not a number or other JSON type"
        if value not in f.enum_type.values_by_name or value == UNSPECIFIED:
            return f"must be one of {', '.join(names)}"
        return None
    if f.type == FD.TYPE_STRING:
        return None if isinstance(value, str) else "must be a string"
    if f.type == FD.TYPE_BOOL:
        return None if isinstance(value, bool) else "must be true or false"
    if f.type in _INTEGERS:
        return None if isinstance(value, int) and not isinstance(value, bool) else "must be an integer"
    if f.type in _NUMBERS:
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "must be a number"
    return None


def check_body(desc: descriptor.Descriptor, body: dict, trail: str = "") -> None:
    """The body in the contract's terms: known snake_case names and the field's JSON type."""
    for key, value in body.items():
        where = f"{trail}{key}"
        f = desc.fields_by_name.get(key)
        if f is None:
            named = next((g.name for g in desc.fields if g.json_name == key), None)
            hint = f" (the contract spells it {trail}{named})" if named else ""
            raise BadRequest(where, f"unknown field{hint}")
        if value is None:
            if required(f):
                raise BadRequest(where, "is required and may not be null")
            continue
        sub = f.message_type
        if f.is_repeated:
            if not isinstance(value, list):
                raise BadRequest(where, "must be a list")
            items = [(f"{where}[{i}]", v) for i, v in enumerate(value)]
        else:
            items = [(where, value)]
        for at, item in items:
            if sub is not None and sub.full_name in JSON_VALUES:
                if sub.full_name == STRUCT and not isinstance(item, dict):
                    raise BadRequest(at, "must be an object")
            elif sub is not None:
                if not isinstance(item, dict):
                    raise BadRequest(at, "must be an object")
                check_body(sub, item, f"{at}.")
            else:
                problem = _scalar_problem(f, item)
                if problem:
                    raise BadRequest(at, problem)


def _check_required(desc: descriptor.Descriptor, data: dict) -> None:
    for f in desc.fields:
        if required(f) and data.get(f.name) is None:
            raise BadRequest(f.name, "is required")


_PARSE_FIELD = re.compile(r"Failed to parse (\w+) field")


def _first_line(text: str) -> str:
    return str(text).strip().splitlines()[0] if str(text).strip() else "invalid"


def build_request(route: HttpRoute, body: dict | None, path: dict[str, str], query: list[tuple[str, str]]):
    """One request message from body, path variables and query parameters."""
    cls = route.request_class()
    fields = cls.DESCRIPTOR.fields_by_name
    data: dict = {}
    if body is not None:
        check_body(cls.DESCRIPTOR, body)
        data.update(body)
    for name, value in path.items():
        if name in data and data[name] != value:
            raise BadRequest(name, f"path says {value!r}, body says {data[name]!r}")
        data[name] = value
    for name, value in query:
        field = fields.get(name)
        if field is None or name in path:
            raise BadRequest(name, "unknown query parameter")
        if field.message_type is not None:
            raise BadRequest(name, "an object, not a query parameter; send it in a JSON body")
        if field.type == descriptor.FieldDescriptor.TYPE_BOOL:
            if value.lower() not in _BOOL_WORDS:
                raise BadRequest(name, "must be true or false")
            value = _BOOL_WORDS[value.lower()]  # type: ignore[assignment]
        if field.is_repeated:
            data.setdefault(name, []).append(value)
        elif name in data:
            raise BadRequest(name, "given more than once")
        else:
            data[name] = value
    if route.body:
        _check_required(cls.DESCRIPTOR, data)
    try:
        return json_format.ParseDict(data, cls())
    except json_format.ParseError as exc:
        text = _first_line(str(exc))
        named = _PARSE_FIELD.search(text)
        raise BadRequest(named.group(1) if named else "body", text) from None


def parse_body(raw: bytes) -> dict:
    if not raw.strip():
        return {}
    try:
        body = strict_json.loads_located(raw)
    except strict_json.DuplicateKey as dup:
        raise BadRequest(dup.where, "key given more than once (duplicate keys are refused)") from None
    except ValueError as exc:
        raise BadRequest("body", f"not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise BadRequest("body", "must be a JSON object")
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
    for item in details:
        if item["@type"] == _ERROR_INFO and item.get("reason") == "ILLEGAL_TRANSITION":
            # Every key present; what the ticket lacks (OPEN: no last result) is null, never "".
            metadata = item.get("metadata", {})
            item["metadata"] = {k: metadata.get(k) or None for k in TRANSITION_KEYS}
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


def fail_body(message: str, code: str, violation: tuple[str, str] | None = None) -> dict:
    """The FAIL body of a refusal the gateway makes itself, shaped as a gRPC error's:
    ``violation`` (field, rule) becomes a BadRequest detail."""
    details = []
    if violation is not None:
        details.append({"field_violations": [{"field": violation[0], "description": violation[1]}],
                        "@type": error_details_pb2.BadRequest.DESCRIPTOR.full_name})
    return {"result": "FAIL", "message": message, "code": code, "details": details}


class JSONResponse(Response):
    """Every JSON body the HTTP side sends (answers, refusals, stream errors)."""

    media_type = "application/json"

    def render(self, content) -> bytes:
        return orjson.dumps(content)


def fail_response(status: int, message: str, code: str, violation: tuple[str, str] | None = None,
                  headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(fail_body(message, code, violation), status_code=status, headers=headers)
