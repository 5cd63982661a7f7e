"""The two stored records (SPEC §2) and the board row, as plain dicts.

Building, encoding and structurally checking log lines lives here; the
ledger's files and index call these and nothing else decides a line's shape.
"""
from __future__ import annotations

import uuid
from typing import Any

import orjson

from server.common.clock import parse_iso
from server.ledger.machine import OPEN, STATUSES
from server.ledger.validation import REQUEST_TYPES

REQUEST_SCHEMA = "TICKET_REQUEST_V1"
RESULT_SCHEMA = "TICKET_RESULT_V1"
BOARD_SCHEMA = "TICKETS_BOARD_V1"

REQUEST_KEYS = ("schema", "request_id", "requested_at", "request_type", "payload", "trace_id", "status")
RESULT_KEYS = ("schema", "result_id", "request_id", "processed_at", "status", "processor_id", "message", "artifacts")


def new_id() -> str:
    return str(uuid.uuid4())


def request_record(
    request_id: str,
    requested_at: str,
    request_type: str,
    payload: dict,
    trace_id: str | None,
    idempotency_key: str | None,
) -> dict:
    record = {
        "schema": REQUEST_SCHEMA,
        "request_id": request_id,
        "requested_at": requested_at,
        "request_type": request_type,
        "payload": payload,
        "trace_id": trace_id,
        "status": OPEN,
    }
    if idempotency_key is not None:
        record["idempotency_key"] = idempotency_key
    return record


def result_record(
    result_id: str,
    request_id: str,
    processed_at: str,
    status: str,
    processor_id: str,
    message: str,
    artifacts: list[str],
) -> dict:
    return {
        "schema": RESULT_SCHEMA,
        "result_id": result_id,
        "request_id": request_id,
        "processed_at": processed_at,
        "status": status,
        "processor_id": processor_id,
        "message": message,
        "artifacts": artifacts,
    }


def encode(record: dict) -> bytes:
    """One JSONL line, UTF-8, newline-terminated (non-ASCII kept as is)."""
    return orjson.dumps(record) + b"\n"


class LineError(ValueError):
    """A log line that is not a well-formed record; says why."""


def _uuid(value: Any, key: str) -> None:
    if not isinstance(value, str):
        raise LineError(f"{key} is not a string")
    try:
        if str(uuid.UUID(value)) != value:
            raise LineError(f"{key} is not a lowercase canonical UUID")
    except ValueError:
        raise LineError(f"{key} is not a UUID") from None


def _timestamp(value: Any, key: str) -> None:
    if not isinstance(value, str):
        raise LineError(f"{key} is not a string")
    try:
        parse_iso(value)
    except ValueError:
        raise LineError(f"{key} is not an ISO 8601 time with offset") from None


def parse_request_line(raw: bytes) -> dict:
    try:
        rec = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise LineError(f"not JSON ({exc})") from None
    if not isinstance(rec, dict):
        raise LineError("not a JSON object")
    if rec.get("schema") != REQUEST_SCHEMA:
        raise LineError(f"schema is {rec.get('schema')!r}, expected {REQUEST_SCHEMA}")
    keys = tuple(rec)
    if keys != REQUEST_KEYS and keys != REQUEST_KEYS + ("idempotency_key",):
        raise LineError(f"keys {list(keys)} differ from {list(REQUEST_KEYS)}")
    _uuid(rec["request_id"], "request_id")
    _timestamp(rec["requested_at"], "requested_at")
    if rec["request_type"] not in REQUEST_TYPES:
        raise LineError(f"request_type {rec['request_type']!r} is unknown")
    if not isinstance(rec["payload"], dict):
        raise LineError("payload is not an object")
    if rec["trace_id"] is not None and not isinstance(rec["trace_id"], str):
        raise LineError("trace_id is not a string or null")
    if rec["status"] != OPEN:
        raise LineError("status of a request line must be OPEN")
    if "idempotency_key" in rec and not isinstance(rec["idempotency_key"], str):
        raise LineError("idempotency_key is not a string")
    return rec


def parse_result_line(raw: bytes) -> dict:
    try:
        rec = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise LineError(f"not JSON ({exc})") from None
    if not isinstance(rec, dict):
        raise LineError("not a JSON object")
    if rec.get("schema") != RESULT_SCHEMA:
        raise LineError(f"schema is {rec.get('schema')!r}, expected {RESULT_SCHEMA}")
    if tuple(rec) != RESULT_KEYS:
        raise LineError(f"keys {list(rec)} differ from {list(RESULT_KEYS)}")
    _uuid(rec["result_id"], "result_id")
    _uuid(rec["request_id"], "request_id")
    _timestamp(rec["processed_at"], "processed_at")
    if rec["status"] not in STATUSES or rec["status"] == OPEN:
        raise LineError(f"status {rec['status']!r} is not IN_PROGRESS, DONE or FAILED")
    if not isinstance(rec["processor_id"], str) or not isinstance(rec["message"], str):
        raise LineError("processor_id and message must be strings")
    if not isinstance(rec["artifacts"], list) or not all(isinstance(a, str) for a in rec["artifacts"]):
        raise LineError("artifacts must be a list of strings")
    return rec


def board_row(request: dict, last_result: dict | None) -> dict:
    """TICKETS_BOARD_V1 row; last_* are null while OPEN."""
    return {
        "request_id": request["request_id"],
        "requested_at": request["requested_at"],
        "request_type": request["request_type"],
        "payload": request["payload"],
        "trace_id": request["trace_id"],
        "current_status": last_result["status"] if last_result else OPEN,
        "last_message": last_result["message"] if last_result else None,
        "last_processed_at": last_result["processed_at"] if last_result else None,
    }

