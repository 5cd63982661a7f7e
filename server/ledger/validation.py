"""Input rules of the ledger (SPEC §2.4), as pure checks.

Each check returns cleaned values or raises InvalidArgument listing every
violated rule with its field, so nothing reaches the store unless all of it
is valid.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from opsledger.server.common.struct_numbers import restore_integers
from opsledger.server.errors import InvalidArgument, Violation
from opsledger.server.ledger.machine import DONE, FAILED

SUBMIT_SCHEMA = "TICKET_SUBMIT_V1"
REQUEST_TYPES = ("REQUEST_RECONCILE", "REQUEST_REPORTS", "ACKNOWLEDGE", "REQUEST_LIVE_CYCLE")
DEFAULT_PROCESSOR = "manual"
DEFAULT_CONSUME_MESSAGE = "ticket processing started"
MAX_REASON = 200
MAX_MESSAGE = 2000
MAX_TRACE_ID = 128
MAX_IDEMPOTENCY_KEY = 128
MAX_MESSAGE_ID = 256
MAX_ARTIFACTS = 64
_PROCESSOR = re.compile(r"[A-Za-z0-9_.:@-]{1,128}")


def _reason(value: Any, where: str, out: list[Violation]) -> None:
    if not isinstance(value, str):
        out.append(Violation(where, "must be a string"))
    elif not 1 <= len(value) <= MAX_REASON:
        out.append(Violation(where, f"must be 1-{MAX_REASON} characters"))


def _enum(value: Any, allowed: tuple[str, ...], where: str, out: list[Violation]) -> None:
    if value not in allowed:
        out.append(Violation(where, f"must be one of {', '.join(allowed)}"))


def _reconcile(p: dict, out: list[Violation]) -> None:
    _enum(p.get("mode"), ("FULL", "INCREMENTAL"), "payload.mode", out)
    _reason(p.get("reason"), "payload.reason", out)
    if "lookback_days" in p:
        days = p["lookback_days"]
        if p.get("mode") != "INCREMENTAL":
            out.append(Violation("payload.lookback_days", "allowed only with mode INCREMENTAL"))
        elif isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 365:
            out.append(Violation("payload.lookback_days", "must be an integer 1-365"))


def _reports(p: dict, out: list[Violation]) -> None:
    _enum(p.get("mode"), ("RE-EVALUATE", "REGEN"), "payload.mode", out)
    _enum(p.get("scope"), ("PHASE_C_LATEST",), "payload.scope", out)
    _reason(p.get("reason"), "payload.reason", out)


def _acknowledge(p: dict, out: list[Violation]) -> None:
    mid = p.get("message_id")
    if not isinstance(mid, str) or not 1 <= len(mid) <= MAX_MESSAGE_ID:
        out.append(Violation("payload.message_id", f"must be a string of 1-{MAX_MESSAGE_ID} characters"))


def _live_cycle(p: dict, out: list[Violation]) -> None:
    _reason(p.get("reason"), "payload.reason", out)


# request_type -> (required keys, optional keys, value rules)
PAYLOAD_RULES: dict[str, tuple[frozenset, frozenset, Callable[[dict, list], None]]] = {
    "REQUEST_RECONCILE": (frozenset({"mode", "reason"}), frozenset({"lookback_days"}), _reconcile),
    "REQUEST_REPORTS": (frozenset({"mode", "scope", "reason"}), frozenset(), _reports),
    "ACKNOWLEDGE": (frozenset({"message_id"}), frozenset(), _acknowledge),
    "REQUEST_LIVE_CYCLE": (frozenset({"reason"}), frozenset(), _live_cycle),
}


def check_submit(
    schema: str,
    request_type: str,
    payload: Any,
    trace_id: str | None,
    idempotency_key: str | None,
) -> dict:
    """Validate TICKET_SUBMIT_V1; returns the cleaned payload."""
    out: list[Violation] = []
    if schema not in ("", SUBMIT_SCHEMA):
        out.append(Violation("schema", f"must be {SUBMIT_SCHEMA} when sent"))
    if request_type not in PAYLOAD_RULES:
        out.append(Violation("request_type", f"must be one of {', '.join(REQUEST_TYPES)}"))
    if not isinstance(payload, dict):
        out.append(Violation("payload", "must be an object"))
        payload = {}
    payload = restore_integers(payload)
    if request_type in PAYLOAD_RULES:
        required, optional, rules = PAYLOAD_RULES[request_type]
        for key in sorted(required - payload.keys()):
            out.append(Violation(f"payload.{key}", f"is required for {request_type}"))
        for key in sorted(payload.keys() - required - optional):
            out.append(Violation(f"payload.{key}", f"is not a known key for {request_type}"))
        rules(payload, out)
    if trace_id is not None and len(trace_id) > MAX_TRACE_ID:
        out.append(Violation("trace_id", f"must be at most {MAX_TRACE_ID} characters"))
    _idempotency_key(idempotency_key, out)
    if out:
        raise InvalidArgument(out)
    return payload


def retry_token(request: Any) -> str | None:
    """The caller's retry token (AIP-155) from a request message, when it sent one."""
    return request.idempotency_key if request.HasField("idempotency_key") else None


def check_idempotency_key(value: str | None) -> str | None:
    """A retry token (RunCycle's ``idempotency_key``): None or 1-128 characters."""
    out: list[Violation] = []
    _idempotency_key(value, out)
    if out:
        raise InvalidArgument(out)
    return value


def _idempotency_key(value: str | None, out: list[Violation]) -> None:
    """Submit's key and the transitions' retry token share one rule."""
    if value is not None and not 1 <= len(value) <= MAX_IDEMPOTENCY_KEY:
        out.append(Violation("idempotency_key", f"must be 1-{MAX_IDEMPOTENCY_KEY} characters"))


def check_request_id(value: str, where: str = "request_id") -> str:
    """A ticket id must be a UUID; returns its lowercase canonical text."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise InvalidArgument.one(where, "must be a UUID") from None


def _processor(value: str, out: list[Violation]) -> str:
    processor = value or DEFAULT_PROCESSOR
    if not _PROCESSOR.fullmatch(processor):
        out.append(Violation("processor_id", "must be 1-128 characters of [A-Za-z0-9_.:@-]"))
    return processor


def _message(value: str, out: list[Violation]) -> None:
    if len(value) > MAX_MESSAGE:
        out.append(Violation("message", f"must be at most {MAX_MESSAGE} characters"))


def _claim(processor_id: str, message: str | None, out: list[Violation]) -> tuple[str, str]:
    processor = _processor(processor_id, out)
    text = DEFAULT_CONSUME_MESSAGE if message is None else message
    _message(text, out)
    return processor, text


def _request_id(value: str, out: list[Violation]) -> str:
    try:
        return check_request_id(value)
    except InvalidArgument as exc:
        out.extend(exc.violations)
        return value


def check_consume(request_id: str, processor_id: str, message: str | None,
                  idempotency_key: str | None = None) -> tuple[str, str, str]:
    out: list[Violation] = []
    rid = _request_id(request_id, out)
    processor, text = _claim(processor_id, message, out)
    _idempotency_key(idempotency_key, out)
    if out:
        raise InvalidArgument(out)
    return rid, processor, text


MAX_WAIT_SECONDS = 60.0


def check_consume_next(processor_id: str, message: str | None, wait_seconds: float,
                       idempotency_key: str | None = None) -> tuple[str, str, float]:
    out: list[Violation] = []
    processor, text = _claim(processor_id, message, out)
    _idempotency_key(idempotency_key, out)
    if not (0 <= wait_seconds <= MAX_WAIT_SECONDS):  # also refuses NaN
        out.append(Violation("wait_seconds", f"must be 0-{MAX_WAIT_SECONDS:g}"))
    if out:
        raise InvalidArgument(out)
    return processor, text, wait_seconds


def check_complete(
    request_id: str,
    status: str,
    processor_id: str,
    message: str,
    artifacts: list[str],
    check_ref: Callable[[str], object],
    idempotency_key: str | None = None,
) -> tuple[str, str, str, str, list[str]]:
    """``check_ref`` raises ValueError for a ref breaking RAW_PATH_ONLY."""
    out: list[Violation] = []
    rid = _request_id(request_id, out)
    _idempotency_key(idempotency_key, out)
    if status not in (DONE, FAILED):
        out.append(Violation("status", "must be DONE or FAILED"))
    processor = _processor(processor_id, out)
    _message(message, out)
    if len(artifacts) > MAX_ARTIFACTS:
        out.append(Violation("artifacts", f"must hold at most {MAX_ARTIFACTS} refs"))
    else:
        for i, ref in enumerate(artifacts):
            try:
                check_ref(ref)
            except ValueError as exc:
                out.append(Violation(f"artifacts[{i}]", f"RAW_PATH_ONLY: {exc}"))
    if out:
        raise InvalidArgument(out)
    return rid, status, processor, message, list(artifacts)
