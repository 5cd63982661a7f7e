"""OpenAPI 3.1 from the same descriptors the routes come from.

Paths from the HTTP rules; schemas from the messages. Response schemas say
what the gateway sends: every field present, unset optional ones as null,
plus the legacy extras. Errors share one body schema per kind.
"""
from __future__ import annotations

from google.protobuf import descriptor

from opsledger.server.api import HttpRoute
from opsledger.server.common.contract_json import LIST_VALUE, STRUCT, UNSPECIFIED, VALUE
from opsledger.server.gateway.mapping import LEGACY_EXTRAS, is_view, required

FD = descriptor.FieldDescriptor
_SCALARS = {
    FD.TYPE_STRING: {"type": "string"},
    FD.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
    FD.TYPE_BOOL: {"type": "boolean"},
    FD.TYPE_DOUBLE: {"type": "number"},
    FD.TYPE_FLOAT: {"type": "number"},
    FD.TYPE_INT32: {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1},
    FD.TYPE_SINT32: {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1},
    FD.TYPE_UINT32: {"type": "integer", "format": "int32", "minimum": 0, "maximum": 2**32 - 1},
    FD.TYPE_INT64: {"type": "string", "format": "int64"},
    FD.TYPE_UINT64: {"type": "string", "format": "int64"},
}

ERROR_SCHEMAS = {
    "Fail": {
        "type": "object",
        "required": ["result", "message"],
        "properties": {
            "result": {"const": "FAIL"},
            "message": {"type": "string"},
            "code": {"type": "string"},
            "details": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Conflict": {
        "type": "object",
        "required": ["result", "message", "current_status"],
        "properties": {
            "result": {"const": "CONFLICT"},
            "message": {"type": "string"},
            "current_status": {"type": "string"},
            "code": {"type": "string"},
            "details": {"type": "array", "items": {"type": "object"}},
        },
    },
}


class _Schemas:
    def __init__(self) -> None:
        self.components: dict[str, dict] = dict(ERROR_SCHEMAS)

    def ref(self, desc: descriptor.Descriptor, response: bool, extras: dict | None = None) -> dict:
        name = desc.full_name + ("" if response else ".Input") + (".Legacy" if extras else "")
        if name not in self.components:
            self.components[name] = {}  # placeholder: recursion-safe
            self.components[name] = self._message(desc, response, extras or {})
        return {"$ref": f"#/components/schemas/{name}"}

    def _message(self, desc: descriptor.Descriptor, response: bool, extras: dict) -> dict:
        props = {f.name: self.field(f, response) for f in desc.fields}
        props.update({k: {"type": "null"} for k in extras})
        schema = {"type": "object", "properties": props, "additionalProperties": False}
        if response:
            schema["required"] = list(props)
        else:
            needed = [f.name for f in desc.fields if required(f)]
            if needed:
                schema["required"] = needed
        return schema

    def field(self, f: descriptor.FieldDescriptor, response: bool) -> dict:
        if f.message_type is not None and f.message_type.full_name == STRUCT:
            item = {"type": "object"}
        elif f.message_type is not None and f.message_type.full_name == VALUE:
            item = {}  # any JSON value
        elif f.message_type is not None and f.message_type.full_name == LIST_VALUE:
            item = {"type": "array"}
        elif f.message_type is not None:
            item = self.ref(f.message_type, response)
        elif f.enum_type is not None:
            names = [v.name for v in f.enum_type.values if v.name != UNSPECIFIED]
            item = {"type": "string", "enum": names}  # type: ignore[dict-item]
            if response and not f.is_repeated:
                return {"anyOf": [item, {"type": "null"}]}  # no value is null, never VALUE_UNSPECIFIED
        else:
            item = dict(_SCALARS.get(f.type, {}))  # type: ignore[call-overload]
        if f.is_repeated:
            return {"type": "array", "items": item}
        if f.has_presence:
            return {"anyOf": [item, {"type": "null"}]}
        return item


def _query_param(f: descriptor.FieldDescriptor, schemas: _Schemas, note: str = "") -> dict:
    schema = schemas.field(f, response=False)
    if "anyOf" in schema:
        schema = schema["anyOf"][0]
    param = {"name": f.name, "in": "query", "required": False, "schema": schema}
    if note:
        param["description"] = note
    if f.is_repeated:
        param.update(style="form", explode=True)
    return param


def openapi_document(routes: list[HttpRoute]) -> dict:
    schemas = _Schemas()
    paths: dict[str, dict] = {}
    for r in routes:
        req = r.method.input_type
        resp = r.method.output_type
        params = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in r.path_params]
        if not r.body:
            params += [_query_param(f, schemas) for f in req.fields if f.name not in r.path_params]
        else:
            # Scalars may come from the query string when the body is empty.
            note = "read only when the request body is empty; a JSON body, when sent, is the request"
            params += [_query_param(f, schemas, note) for f in req.fields
                       if f.name not in r.path_params and f.message_type is None]
        body_ref = schemas.ref(resp, response=True, extras=LEGACY_EXTRAS.get(r.key))
        fail = {"$ref": "#/components/schemas/Fail"}
        op = {
            "operationId": f"{r.method.containing_service.name}_{r.method.name}",
            "summary": r.key,
            "parameters": params,
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": body_ref}}},
                "409": {"description": "Refused transition",
                        "content": {"application/json": {"schema": {"anyOf": [
                            {"$ref": "#/components/schemas/Conflict"}, {"$ref": "#/components/schemas/Fail"}]}}}},
                "default": {"description": "Error",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Fail"}}}},
            },
        }
        if is_view(resp):
            # Refusals of a view answer in its envelope (status "error"); the
            # gateway's own refusals (unknown parameter, ...) stay Fail bodies.
            for status, text in (("400", "Invalid request (envelope code INVALID_REF for a view)"),
                                 ("404", "Nothing behind a valid request (envelope code NOT_FOUND)")):
                op["responses"][status] = {"description": text, "content": {"application/json": {  # type: ignore[index]
                    "schema": {"anyOf": [body_ref, fail]}}}}
        if r.method.server_streaming:
            # A stream of messages: NDJSON lines {"result": …} by default, Server-Sent Events on request.
            op["tags"] = ["streaming"]
            op["responses"]["200"] = {"description": "A stream of messages (never ends by itself)", "content": {  # type: ignore[index]
                "application/x-ndjson": {"schema": {"type": "object", "properties": {"result": body_ref}}},
                "text/event-stream": {"schema": {"type": "string"}}}}
        if r.body:
            op["requestBody"] = {
                "required": False,
                "content": {"application/json": {"schema": schemas.ref(req, response=False)}},
            }
        paths.setdefault(r.template, {})[r.verb.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "opsledger HTTP gateway", "version": "v1",
                 "description": "Generated from the google.api.http annotations of the opsledger.v1 protos."},
        "paths": paths,
        "components": {"schemas": schemas.components},
    }
