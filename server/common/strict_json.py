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
from typing import Any, NoReturn

import orjson


class DuplicateKey(ValueError):
    def __init__(self, key: str, where: str | None = None) -> None:
        self.key = key
        self.where = where or key  # dotted path of the repeated key, e.g. payload.reason
        super().__init__(f"duplicate key {key!r} in a JSON object")


def _unique(pairs: list[tuple[str, Any]]) -> dict:
    obj: dict = {}
    for key, value in pairs:
        if key in obj:
            raise DuplicateKey(key)
        obj[key] = value
    return obj


def _where_repeated(raw: bytes) -> tuple[str, str | None]:
    """The first repeated key (in the order ``_unique`` meets it) and its dotted path:
    a last-wins parse remembers the very object that held it, found again by identity
    (an equal object elsewhere in the document is another place)."""
    first: list[tuple[dict, str]] = []

    def keep_last(pairs: list[tuple[str, Any]]) -> dict:
        obj = dict(pairs)
        if not first and len(obj) < len(pairs):
            seen: set[str] = set()
            for key, _value in pairs:
                if key in seen:
                    first.append((obj, key))
                    break
                seen.add(key)
        return obj

    tree = json.loads(raw, object_pairs_hook=keep_last)
    target, key = first[0]
    return key, _path_of(tree, target, key)


def _path_of(value: Any, target: dict, key: str, trail: str = "", depth: int = 0) -> str | None:
    """Dotted path of ``key`` inside the object that is ``target`` (depth-first)."""
    if depth > 64:
        return None
    if isinstance(value, dict):
        if value is target:
            return f"{trail}.{key}" if trail else key
        items = ((k if not trail else f"{trail}.{k}", v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((f"{trail}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for sub, v in items:
        found = _path_of(v, target, key, sub, depth + 1)
        if found is not None:
            return found
    return None


def _no_constant(name: str) -> NoReturn:
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


def loads_located(raw: bytes) -> Any:
    """For request bodies: orjson's text rules (no invalid UTF-8, no lone surrogate,
    no NaN), and a repeated key refused with ``where`` naming its path."""
    value = orjson.loads(raw)  # orjson.JSONDecodeError is a ValueError
    if b"{" in raw:
        try:
            loads(raw)
        except DuplicateKey:
            raise DuplicateKey(*_where_repeated(raw)) from None
        except RecursionError:
            raise ValueError("nested too deeply") from None
    return value
