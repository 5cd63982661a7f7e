"""The one home of a protobuf message as contract JSON.

Contract bodies name every field in the contract's snake_case, in field
order, with an unset optional field as ``null`` and an empty list as ``[]``
(protobuf's own JSON leaves both out), and Struct/Value numbers that are integral
given back as integers. The gateway's bodies and the CLI's output both come
from here, so what they print is what is stored.

``generic_dict`` states the rule: json_format, then ``complete``. json_format
decides each field's handling again for every value it meets, and a
1,000-row board page spent most of its gateway time there; so
``contract_dict`` runs a function generated once per message type that gives
exactly the same result (tests/common/test_contract_json.py checks it on
random messages of every response type) with plain attribute reads. A type
using something the generator does not handle (maps, Any, wrappers, other
well-known types) goes through ``generic_dict``.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from google.protobuf import descriptor, json_format, struct_pb2

from opsledger.server.common.struct_numbers import restore_integers

STRUCT = "google.protobuf.Struct"
VALUE = "google.protobuf.Value"
LIST_VALUE = "google.protobuf.ListValue"
# Free JSON (Struct, and Value for a view's "data"): numbers come back as doubles.
JSON_VALUES = frozenset({STRUCT, VALUE, LIST_VALUE})
UNSPECIFIED = "VALUE_UNSPECIFIED"  # every enum's zero: "no value", never a value of its own
FD = descriptor.FieldDescriptor
_INT64 = {FD.CPPTYPE_INT64, FD.CPPTYPE_UINT64}
_FLOATS = {FD.CPPTYPE_FLOAT, FD.CPPTYPE_DOUBLE}

Render = Callable[[object], dict]


def complete(desc: descriptor.Descriptor, d: dict) -> dict:
    """``d`` (protobuf JSON of a ``desc`` message) with every field present."""
    out = {}
    for f in desc.fields:
        value = d.get(f.name)
        sub = f.message_type
        if sub is not None and sub.full_name in JSON_VALUES:
            out[f.name] = restore_integers(value) if value is not None else (
                [] if f.is_repeated else None)
        elif sub is not None and sub.GetOptions().map_entry:
            out[f.name] = value or {}
        elif f.is_repeated:
            items = value or []
            out[f.name] = [complete(sub, i) for i in items] if sub is not None else items
        elif value is None or (f.enum_type is not None and value == UNSPECIFIED):
            out[f.name] = None  # "no value" is null, never the proto's zero name
        else:
            out[f.name] = complete(sub, value) if sub is not None else value
    return out


def generic_dict(message: Any) -> dict:
    plain = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return complete(message.DESCRIPTOR, plain)


def contract_dict(message: Any) -> dict:
    fast = renderer(message.DESCRIPTOR)
    return fast(message) if fast is not None else generic_dict(message)


class Unsupported(Exception):
    """A message type this compiler leaves to the generic path."""


# -- Struct / Value / ListValue: JSON values, integral numbers as ints ----------------
def _number(x: float) -> int | float:
    if math.isinf(x) or math.isnan(x):
        # json_format refuses these too (they would read back as strings)
        raise json_format.SerializeToJsonError("Fail to serialize a non-finite number in Struct/Value")
    return int(x) if x.is_integer() else x


def value_plain(v: struct_pb2.Value) -> Any:
    kind = v.WhichOneof("kind")
    if kind == "string_value":
        return v.string_value
    if kind == "number_value":
        return _number(v.number_value)
    if kind == "bool_value":
        return v.bool_value
    if kind == "struct_value":
        return struct_plain(v.struct_value)
    if kind == "list_value":
        return list_plain(v.list_value)
    return None  # null_value or unset


def list_plain(lv: struct_pb2.ListValue) -> list:
    return [value_plain(x) for x in lv.values]


def struct_plain(s: struct_pb2.Struct) -> dict:
    # The map's own order, as json_format. Keys then lookups: the map's items() is the
    # generic Python ItemsView (a lookup per key anyway, and slower). Strings, the
    # common payload value, are taken without a call.
    fields = s.fields
    out = {}
    for key in fields:
        v = fields[key]
        out[key] = v.string_value if v.WhichOneof("kind") == "string_value" else value_plain(v)
    return out


# -- scalars --------------------------------------------------------------------------
_PRINTER = json_format._Printer(preserving_proto_field_name=True)  # type: ignore[attr-defined]  # enum names as json_format spells them


class _EnumNames(dict):
    """An enum's JSON names by number; an unknown number of an open enum stays a number."""

    def __missing__(self, number: int) -> int:
        return number


def _scalar(f: FD) -> Callable[[Any], Any] | None:
    """How json_format converts this scalar; None when the value is already its JSON form."""
    if f.cpp_type == FD.CPPTYPE_ENUM:
        assert f.enum_type is not None  # an enum field has its enum type
        if f.enum_type.is_closed:
            raise Unsupported(f.full_name)
        names = {v.number: _PRINTER._FieldToJsonObject(f, v.number) for v in f.enum_type.values}
        if not f.is_repeated:  # "no value" is null, never the proto's zero name (as ``complete``)
            names = {n: None if name == UNSPECIFIED else name for n, name in names.items()}
        return _EnumNames(names).__getitem__  # a C-level lookup per value, no Python frame
    if f.cpp_type in _INT64 or f.type == FD.TYPE_BYTES or f.cpp_type in _FLOATS:
        return lambda v: _PRINTER._FieldToJsonObject(f, v)  # strings for int64, base64, Infinity/NaN
    return None  # str, bool and 32-bit integers come out of upb as their JSON values


def _converter(f: FD, compiled: dict) -> Callable[[Any], Any] | None:
    sub = f.message_type
    if sub is None:
        return _scalar(f)
    if sub.GetOptions().map_entry:
        raise Unsupported(f.full_name)
    if sub.full_name == STRUCT:
        return struct_plain
    if sub.full_name == VALUE:
        return value_plain
    if sub.full_name == LIST_VALUE:
        return list_plain
    if sub.full_name.startswith("google.protobuf."):
        raise Unsupported(sub.full_name)  # other well-known types have their own JSON forms
    return _compile(sub, compiled)


def _compile(desc: descriptor.Descriptor, compiled: dict) -> Render:
    """One generated function per message type: a dict display of its fields."""
    if desc.full_name in compiled:
        return compiled[desc.full_name]
    namespace: dict = {}

    def render(m: Any) -> dict:  # replaced below; lets a message type contain itself
        return namespace["render"](m)

    compiled[desc.full_name] = render
    items = []
    for i, f in enumerate(desc.fields):
        conv = _converter(f, compiled)
        get = f"m.{f.name}"
        if conv is not None:
            namespace[f"c{i}"] = conv
        if f.is_repeated:
            expr = f"[c{i}(x) for x in {get}]" if conv is not None else f"list({get})"
        else:
            one = f"c{i}({get})" if conv is not None else get
            if f.message_type is not None or f.has_presence:  # noqa: SIM108 - two cases, read apart
                expr = f"({one} if m.HasField({f.name!r}) else None)"
            else:
                expr = one
        items.append(f"{f.name!r}: {expr}")
    source = "def render(m):\n    return {" + ", ".join(items) + "}\n"
    exec(compile(source, f"<render {desc.full_name}>", "exec"), namespace)  # noqa: S102 - our own text
    compiled[desc.full_name] = namespace["render"]
    return namespace["render"]


_CACHE: dict[str, Render | None] = {}


def renderer(desc: descriptor.Descriptor) -> Render | None:
    """The compiled renderer of ``desc``, or None when it needs ``generic_dict``."""
    if desc.full_name not in _CACHE:
        try:
            _CACHE[desc.full_name] = _compile(desc, {})
        except Unsupported:
            _CACHE[desc.full_name] = None
    return _CACHE[desc.full_name]
