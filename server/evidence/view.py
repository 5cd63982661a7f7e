"""EVIDENCE_VIEW_V1 bodies (pure): bytes read for a ref -> the view."""
from __future__ import annotations

import orjson

from opsledger.server.evidence.refs import EvidenceRef

SCHEMA = "EVIDENCE_VIEW_V1"
PREVIEW_CHARS = 200


def source(ev: EvidenceRef) -> dict:
    return {"kind": ev.kind, "path": ev.path, "line": ev.line}


def ready(ev: EvidenceRef, data, asof: str) -> dict:
    return {"status": "ready", "schema": SCHEMA, "asof": asof, "row_count": 1,
            "rows": [{"ref": ev.ref, "data": data, "source": source(ev)}], "error": None}


def failed(code: str, message: str, asof: str, raw: bytes | None = None) -> dict:
    preview = raw[:PREVIEW_CHARS * 4].decode("utf-8", errors="replace")[:PREVIEW_CHARS] if raw is not None else None
    return {"status": "error", "schema": SCHEMA, "asof": asof, "row_count": 0, "rows": [],
            "error": {"code": code, "message": message, "preview": preview}}


def from_bytes(ev: EvidenceRef, raw: bytes, asof: str) -> dict:
    """A stored file or line: ready with its parsed JSON, or PARSE_ERROR with a preview."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return failed("PARSE_ERROR", f"{ev.ref}: not valid JSON ({exc})", asof, raw)
    return ready(ev, data, asof)


def log_summary(ev: EvidenceRef, line_count: int, asof: str) -> dict:
    """A whole ledger log: how many lines it holds (each result line is its own ref)."""
    return ready(ev, {"log": ev.path, "line_count": line_count}, asof)
