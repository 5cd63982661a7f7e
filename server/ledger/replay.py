"""Applying one log line to the index: shared by start-up replay, catch-up and fsck.

Raises ``records.LineError`` for a line that is not a record (structure);
returns a reason string for a well-formed line that is not a valid step
(duplicate ticket, result for an unknown ticket, illegal transition), which
is skipped: the current status is the last *valid* transition in log order.
"""
from __future__ import annotations

from server.ledger import records
from server.ledger.index import DuplicateTicket, LedgerIndex, UnknownTicket
from server.ledger.machine import TransitionRefused


def apply_request_line(index: LedgerIndex, line: bytes) -> str | None:
    rec = records.parse_request_line(line)
    try:
        index.add_request(rec, line)
    except DuplicateTicket as exc:
        return str(exc)
    return None


def apply_result_line(index: LedgerIndex, line: bytes, offset: int) -> str | None:
    rec = records.parse_result_line(line)
    try:
        index.apply_result(rec, line, offset)
    except UnknownTicket:
        return f"result for unknown ticket {rec['request_id']}"
    except TransitionRefused as exc:
        return f"illegal transition for {rec['request_id']}: {exc}"
    return None
