"""Applying one log line to the index: shared by start-up replay, catch-up and fsck.

Raises ``records.LineError`` for a line that is not a record (structure).
Returns ``(record, epoch, reason)``: ``reason`` is None when the line was
applied, or says why a well-formed line is not a valid step (duplicate
ticket, result for an unknown ticket, illegal transition); such a line is
skipped, since the current status is the last *valid* transition in log order.
"""
from __future__ import annotations

from opsledger.server.ledger import records
from opsledger.server.ledger.jsonl.index import DuplicateTicket, LedgerIndex, UnknownTicket
from opsledger.server.ledger.machine import TransitionRefused


def apply_request_line(index: LedgerIndex, line: bytes, offset: int) -> tuple[dict, int, str | None]:
    rec, epoch = records.parse_request_line(line)
    try:
        index.add_request(rec, epoch, offset)
    except DuplicateTicket as exc:
        return rec, epoch, str(exc)
    return rec, epoch, None


def apply_result_line(index: LedgerIndex, line: bytes, offset: int) -> tuple[dict, int, str | None]:
    rec, epoch = records.parse_result_line(line)
    try:
        index.apply_result(rec, epoch, offset)
    except UnknownTicket:
        return rec, epoch, f"result for unknown ticket {rec['request_id']}"
    except TransitionRefused as exc:
        return rec, epoch, f"illegal transition for {rec['request_id']}: {exc}"
    return rec, epoch, None
