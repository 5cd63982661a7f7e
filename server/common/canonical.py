"""The one home of canonical JSON and hashing (SPEC §4).

``canonical`` is RFC 8785 (JCS); ``sha256_hex`` hashes it. Bundles may also
carry the legacy hash of ``json.dumps(obj, sort_keys=True,
separators=(",", ":"))``, which ``legacy_sha256_hex`` computes.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson
import rfc8785


def canonical(obj: Any) -> bytes:
    return rfc8785.dumps(obj)


def sha256_hex(obj: Any) -> str:
    return hashlib.sha256(canonical(obj)).hexdigest()


def legacy_sha256_hex(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def without_integrity(report: dict) -> dict:
    return {k: v for k, v in report.items() if k != "integrity"}


def report_sha256(report: dict) -> str:
    """Integrity hash of a receipt: JCS of the object without its integrity key."""
    return sha256_hex(without_integrity(report))


def pretty(obj: Any) -> bytes:
    """How reports are written to disk: readable, UTF-8, newline-terminated."""
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2) + b"\n"
