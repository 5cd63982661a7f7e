"""The one home of a protobuf message as contract JSON.

Contract bodies name every field in the contract's snake_case, in field
order, with an unset optional field as ``null`` and an empty list as ``[]``
(protobuf's own JSON leaves both out), and Struct/Value numbers that are integral
given back as integers. The gateway's bodies and the CLI's output both come
from here, so what they print is what is stored.
"""
from __future__ import annotations

from google.protobuf import descriptor, json_format

from server.common.struct_numbers import restore_integers

_STRUCT = "google.protobuf.Struct"
# Free JSON (Struct, and Value for a view's "data"): numbers come back as doubles.
_JSON_VALUES = (_STRUCT, "google.protobuf.Value", "google.protobuf.ListValue")
_UNSPECIFIED = "VALUE_UNSPECIFIED"


def complete(desc: descriptor.Descriptor, d: dict) -> dict:
    """``d`` (protobuf JSON of a ``desc`` message) with every field present."""
    out = {}
    for f in desc.fields:
        value = d.get(f.name)
        sub = f.message_type
        if sub is not None and sub.full_name in _JSON_VALUES:
            out[f.name] = restore_integers(value) if value is not None else (
                [] if f.is_repeated else None)
        elif sub is not None and sub.GetOptions().map_entry:
            out[f.name] = value or {}
        elif f.is_repeated:
            items = value or []
            out[f.name] = [complete(sub, i) for i in items] if sub is not None else items
        elif value is None or (f.enum_type is not None and value == _UNSPECIFIED):
            out[f.name] = None  # "no value" is null, never the proto's zero name
        else:
            out[f.name] = complete(sub, value) if sub is not None else value
    return out


def contract_dict(message) -> dict:
    plain = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return complete(message.DESCRIPTOR, plain)
