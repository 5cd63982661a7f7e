"""contract_dict (compiled per message type) gives the same bytes as generic_dict (json_format).

Every message type of the contract is filled at random (fields set
and unset, unknown enum numbers, nested Structs with integral and fractional
numbers, non-finite doubles) and rendered both ways.
"""
import math
import random

import orjson
import pytest
from google.protobuf import descriptor, json_format

from opsledger.server.api import package_services
from opsledger.server.common import contract_json

FD = descriptor.FieldDescriptor
from google.protobuf import message_factory  # noqa: E402


def _all_messages():
    """Every message type of the contract's files (requests, responses, nested)."""
    seen = {}

    def walk(desc):
        if desc.full_name not in seen and not desc.GetOptions().map_entry:
            seen[desc.full_name] = desc
            for nested in desc.nested_types:
                walk(nested)

    for service in package_services():
        for desc in service.file.message_types_by_name.values():
            walk(desc)
    return [seen[k] for k in sorted(seen)]


MESSAGES = _all_messages()


def _json(rnd: random.Random, depth: int = 0):
    kind = rnd.choice(["str", "int", "float", "bool", "null"] + (["obj", "list"] if depth < 3 else []))
    if kind == "str":
        return rnd.choice(["", "a", "점검", "x" * rnd.randint(1, 40), "\u0000\n\"\\"])
    if kind == "int":
        return rnd.choice([0, 1, -7, 2**53, 10**15, 2**31])
    if kind == "float":
        return rnd.choice([0.5, -1.25, 1e-9, 3.0, 1e300, 2.0**60])
    if kind == "bool":
        return rnd.random() < 0.5
    if kind == "null":
        return None
    if kind == "obj":
        return {f"k{rnd.randint(0, 30)}": _json(rnd, depth + 1) for _ in range(rnd.randint(0, 5))}
    return [_json(rnd, depth + 1) for _ in range(rnd.randint(0, 4))]


def _scalar(rnd: random.Random, f: FD):
    if f.cpp_type == FD.CPPTYPE_ENUM:
        numbers = [v.number for v in f.enum_type.values]
        return rnd.choice(numbers + [max(numbers) + 5])  # an unknown number of an open enum
    if f.cpp_type == FD.CPPTYPE_STRING:
        return rnd.choice(["", "OK", "2026-11-26T10:00:00+09:00", "점검 끝", "x" * 50])
    if f.cpp_type == FD.CPPTYPE_BOOL:
        return rnd.random() < 0.5
    if f.cpp_type in (FD.CPPTYPE_DOUBLE, FD.CPPTYPE_FLOAT):
        return rnd.choice([0.0, 1.0, 0.1, -2.5, 1e20, math.inf, -math.inf, math.nan])
    return rnd.choice([0, 1, -1, 2**31 - 1])


def _fill(rnd: random.Random, msg, depth: int = 0) -> None:
    for f in msg.DESCRIPTOR.fields:
        if rnd.random() < 0.25:
            continue  # left unset
        sub = f.message_type
        count = rnd.randint(0, 3) if f.is_repeated else 1
        for _ in range(count):
            if sub is not None and sub.full_name == "google.protobuf.Struct":
                target = getattr(msg, f.name).add() if f.is_repeated else getattr(msg, f.name)
                target.update({f"p{i}": _json(rnd) for i in range(rnd.randint(0, 4))})
            elif sub is not None:
                target = getattr(msg, f.name).add() if f.is_repeated else getattr(msg, f.name)
                if depth < 4:
                    _fill(rnd, target, depth + 1)
                else:
                    target.SetInParent()
            elif f.is_repeated:
                getattr(msg, f.name).append(_scalar(rnd, f))
            else:
                setattr(msg, f.name, _scalar(rnd, f))


@pytest.mark.parametrize("desc", MESSAGES, ids=lambda d: d.full_name)
def test_compiled_rendering_is_byte_identical(desc):
    cls = message_factory.GetMessageClass(desc)
    fast = contract_json.renderer(desc)
    assert fast is not None, "every message type of the contract is compiled"
    rnd = random.Random(desc.full_name)
    for _ in range(150):
        msg = cls()
        _fill(rnd, msg)
        msg = cls.FromString(msg.SerializeToString())  # as the gateway receives it
        try:
            expected = contract_json.generic_dict(msg)
        except json_format.SerializeToJsonError:  # a non-finite number in free JSON: both refuse it
            with pytest.raises(json_format.SerializeToJsonError):
                fast(msg)
            continue
        got = fast(msg)
        # repr: same keys in the same order, same values of the same types (1 vs 1.0)
        assert repr(got) == repr(expected)
        try:
            wire = orjson.dumps(expected)
        except TypeError:  # an integral Struct number beyond 64 bits: neither path can send it
            continue
        assert orjson.dumps(got) == wire


def test_types_it_does_not_handle_fall_back_to_the_generic_path():
    from google.protobuf import timestamp_pb2
    from google.rpc import error_details_pb2

    assert contract_json.renderer(error_details_pb2.ErrorInfo.DESCRIPTOR) is None  # a map field
    assert contract_json.renderer(timestamp_pb2.Timestamp.DESCRIPTOR) is not None  # plain fields: compiled
    assert contract_json.renderer(error_details_pb2.RetryInfo.DESCRIPTOR) is None  # a Duration (own JSON form)
