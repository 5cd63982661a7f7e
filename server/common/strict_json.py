"""The one home of parsing JSON that comes from outside: duplicate keys refused.

Two parsers that disagree about ``{"status": "DONE", "status": "OPEN"}``
(first wins, last wins, error) let one reader see what another does not:
every input opsledger accepts (log lines, bundles, CLI JSON, receipts to
verify) is parsed here, and an object with a repeated key is refused,
naming the key. NaN and Infinity are refused too (not JSON).

``loads_fast`` is for the logs' own lines: orjson parses, and a line that
re-encodes to itself byte for byte (every line opsledger writes) cannot hold
a repeated key, so only other lines pay for the strict parse.
"""
from __future__ import annotations

import json
from typing import Any

import orjson


class DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"duplicate key {key!r} in a JSON object")


def _unique(pairs: list[tuple[str, Any]]) -> dict:
    obj: dict = {}
    for key, value in pairs:
        if key in obj:
            raise DuplicateKey(key)
        obj[key] = value
    return obj


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def loads(raw: bytes | str) -> Any:
    """Parse JSON; ValueError (DuplicateKey for a repeated key) when it is not acceptable."""
    return json.loads(raw, object_pairs_hook=_unique, parse_constant=_no_constant)


def loads_fast(raw: bytes) -> Any:
    """orjson's parse of a line, with repeated keys refused (orjson keeps the last)."""
    value = orjson.loads(raw)
    if isinstance(value, dict) and orjson.dumps(value) != raw:
        loads(raw)  # raises for a repeated key; otherwise the line is merely formatted differently
    return value
