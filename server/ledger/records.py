"""The two stored records (SPEC §2) and the board row, as plain dicts.

Building, encoding and structurally checking log lines lives here; the
ledger's files and index call these and nothing else decides a line's shape.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from typing import Any

import orjson

from opsledger.server.common import strict_json
from opsledger.server.common.clock import epoch_seconds
from opsledger.server.ledger.machine import OPEN, STATUSES
from opsledger.server.ledger.validation import REQUEST_TYPES

REQUEST_SCHEMA = "TICKET_REQUEST_V1"
RESULT_SCHEMA = "TICKET_RESULT_V1"
BOARD_SCHEMA = "TICKETS_BOARD_V1"

# The contract's refs of the two logs (evidence refs cite them; the JSONL
# backend keeps its files there and an export writes them there).
REQUESTS_REF = "state/tickets/ticket_requests.jsonl"
RESULTS_REF = "state/tickets/ticket_results.jsonl"

REQUEST_KEYS = ("schema", "request_id", "requested_at", "request_type", "payload", "trace_id", "status")
RESULT_KEYS = ("schema", "result_id", "request_id", "processed_at", "status", "processor_id", "message", "artifacts")
_REQUEST_KEYS_IDEM = REQUEST_KEYS + ("idempotency_key",)
_RESULT_STATUSES = frozenset(s for s in STATUSES if s != OPEN)
_RESULT_STATUS_TEXT = {s.encode(): s for s in _RESULT_STATUSES}


def new_id() -> str:
    return str(uuid.uuid4())


def made_by_token(result_id: str) -> bool:
    """True for a result id derived from a retry token (UUIDv5, see ``decide``);
    the server's own ids are random UUIDv4."""
    return result_id[14:15] == "5"


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


_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_CANONICAL_UUID = re.compile(_UUID)


def is_canonical_uuid(value: Any) -> bool:
    """A lowercase canonical UUID string (a regex, not uuid.UUID(): replay checks millions)."""
    return isinstance(value, str) and _CANONICAL_UUID.fullmatch(value) is not None


def _uuid(value: Any, key: str) -> None:
    if not is_canonical_uuid(value):
        raise LineError(f"{key} is not a lowercase canonical UUID")


def _epoch(value: Any, key: str) -> int:
    if not isinstance(value, str):
        raise LineError(f"{key} is not a string")
    try:
        return epoch_seconds(value)
    except ValueError:
        raise LineError(f"{key} is not an ISO 8601 time with offset") from None


def _load(raw: bytes, schema: str) -> dict:
    try:
        rec = strict_json.loads_fast(raw)
    except strict_json.DuplicateKey as exc:
        raise LineError(str(exc)) from None
    except ValueError as exc:  # orjson.JSONDecodeError is one
        raise LineError(f"not JSON ({exc})") from None
    if not isinstance(rec, dict):
        raise LineError("not a JSON object")
    if rec.get("schema") != schema:
        raise LineError(f"schema is {rec.get('schema')!r}, expected {schema}")
    return rec


# -- the store's own lines, recognised fast ---------------------------------------------
# Start-up replays millions of lines, nearly all exactly as ``encode`` wrote them.
# A line in that canonical form is recognised by one compiled pattern per record
# kind (plus, for requests, orjson's parse re-encoding to the same bytes); every
# other line, and any doubt, goes to the full checks below, which alone say why a
# line is refused. The patterns accept only lines the full checks accept with the
# same values: keys in the one order (so none repeated), lowercase canonical
# UUIDs, a known type or status, strings of printable ASCII with only the escapes
# orjson writes (so valid UTF-8, no lone surrogates), and a time whose hour
# (with its offset) the real parser accepted; minutes and seconds are 00-59.
_U = _UUID.encode()
_T = rb"(\d{4}-\d\d-\d\dT(?:[01]\d|2[0-3])):([0-5]\d:[0-5]\d)(Z|[+-]\d\d:\d\d)"
_C = rb"[ !#-\[\]-\x7f]*+"  # a run of printable ASCII but quote and backslash (possessive: no backtracking)
_S = b'"' + _C + rb'(?:\\(?:["\\bfnrt]|u00[01][0-9a-f])' + _C + rb')*+"'


def _alternatives(names: Iterable[str]) -> bytes:
    return b"|".join(re.escape(n.encode()) for n in sorted(names))


_CANONICAL_REQUEST_HEAD = re.compile(
    b'\\{"schema":"' + REQUEST_SCHEMA.encode() + b'","request_id":"' + _U + b'","requested_at":"' + _T
    + b'","request_type":"(?:' + _alternatives(REQUEST_TYPES) + b')","payload":\\{')
_CANONICAL_RESULT = re.compile(
    b'\\{"schema":"' + RESULT_SCHEMA.encode() + b'","result_id":"(' + _U + b')","request_id":"(' + _U
    + b')","processed_at":"' + _T + b'","status":"(' + _alternatives(_RESULT_STATUSES) + b')","processor_id":'
    + _S + b',"message":' + _S + b',"artifacts":\\[(?:' + _S + b'(?:,' + _S + b')*)?\\]\\}')
_hour_epochs: dict[bytes, int | None] = {}
_SECONDS_INTO_HOUR = {b"%02d:%02d" % divmod(n, 60): n for n in range(3600)}  # b"MM:SS" -> seconds


def _hour_epoch(hour: bytes, offset: bytes) -> int | None:
    """epoch_seconds of ``<hour>:00:00<offset>``, or None when the real parser refuses it."""
    key = hour + offset
    base = _hour_epochs.get(key, -1)
    if base == -1:
        try:
            base = epoch_seconds(f"{hour.decode()}:00:00{offset.decode()}")
        except ValueError:
            base = None
        if len(_hour_epochs) >= 65536:
            _hour_epochs.clear()
        _hour_epochs[key] = base
    return base


def canonical_requests(lines: list[bytes]) -> list[tuple[dict, int]] | None:
    """``parse_request_line`` of every line when all are in the store's canonical
    form; None as soon as one is not (the caller then takes them one by one)."""
    out = []
    head, loads, dumps, known, into_hour = (_CANONICAL_REQUEST_HEAD.match, orjson.loads, orjson.dumps, _hour_epochs,
                                            _SECONDS_INTO_HOUR)
    for raw in lines:
        m = head(raw)
        if m is None:
            return None
        hour, minute_second, offset = m.groups()
        base = known.get(hour + offset)
        if base is None and (base := _hour_epoch(hour, offset)) is None:
            return None
        try:
            rec = loads(raw)
        except ValueError:
            return None
        if dumps(rec) != raw:  # the head above is then rec's first five keys and their values
            return None
        keys = tuple(rec)
        if keys != REQUEST_KEYS and (keys != _REQUEST_KEYS_IDEM or type(rec["idempotency_key"]) is not str):
            return None
        trace_id = rec["trace_id"]
        if (trace_id is not None and type(trace_id) is not str) or rec["status"] != OPEN:
            return None
        out.append((rec, base + into_hour[minute_second]))
    return out


def canonical_results(lines: list[bytes]) -> list[tuple[str, str, str, int]] | None:
    """(request_id, result_id, status, epoch of processed_at) of every line when all
    are result lines in the store's canonical form, without building the records;
    None as soon as one is not (``parse_result_line`` then decides, line by line,
    and says why it refuses one)."""
    out = []
    known, into_hour, status_text = _hour_epochs, _SECONDS_INTO_HOUR, _RESULT_STATUS_TEXT
    for m in map(_CANONICAL_RESULT.fullmatch, lines):
        if m is None:
            return None
        result_id, request_id, hour, minute_second, offset, status = m.groups()
        base = known.get(hour + offset)
        if base is None and (base := _hour_epoch(hour, offset)) is None:
            return None
        out.append((request_id.decode(), result_id.decode(), status_text[status], base + into_hour[minute_second]))
    return out


def parse_request_line(raw: bytes) -> tuple[dict, int]:
    """A TICKET_REQUEST_V1 line and the epoch of its requested_at, or LineError."""
    fast = canonical_requests([raw])
    return fast[0] if fast is not None else parse_request_line_strict(raw)


def parse_request_line_strict(raw: bytes) -> tuple[dict, int]:
    """``parse_request_line`` by every check, whatever the line's form: the reference
    the canonical form above must agree with, and the one that says why it refuses."""
    rec = _load(raw, REQUEST_SCHEMA)
    keys = tuple(rec)
    if keys != REQUEST_KEYS and keys != _REQUEST_KEYS_IDEM:
        raise LineError(f"keys {list(keys)} differ from {list(REQUEST_KEYS)}")
    _uuid(rec["request_id"], "request_id")
    epoch = _epoch(rec["requested_at"], "requested_at")
    if rec["request_type"] not in REQUEST_TYPES:
        raise LineError(f"request_type {rec['request_type']!r} is unknown")
    if type(rec["payload"]) is not dict:
        raise LineError("payload is not an object")
    if rec["trace_id"] is not None and type(rec["trace_id"]) is not str:
        raise LineError("trace_id is not a string or null")
    if rec["status"] != OPEN:
        raise LineError("status of a request line must be OPEN")
    if "idempotency_key" in rec and type(rec["idempotency_key"]) is not str:
        raise LineError("idempotency_key is not a string")
    return rec, epoch


def parse_result_line(raw: bytes) -> tuple[dict, int]:
    """A TICKET_RESULT_V1 line and the epoch of its processed_at, or LineError."""
    rec = _load(raw, RESULT_SCHEMA)
    if tuple(rec) != RESULT_KEYS:
        raise LineError(f"keys {list(rec)} differ from {list(RESULT_KEYS)}")
    _uuid(rec["result_id"], "result_id")
    _uuid(rec["request_id"], "request_id")
    epoch = _epoch(rec["processed_at"], "processed_at")
    if rec["status"] not in _RESULT_STATUSES:
        raise LineError(f"status {rec['status']!r} is not IN_PROGRESS, DONE or FAILED")
    if type(rec["processor_id"]) is not str or type(rec["message"]) is not str:
        raise LineError("processor_id and message must be strings")
    artifacts = rec["artifacts"]
    if type(artifacts) is not list or not all(type(a) is str for a in artifacts):
        raise LineError("artifacts must be a list of strings")
    return rec, epoch


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

