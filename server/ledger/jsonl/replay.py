"""Applying one log line to the index: shared by start-up replay, catch-up and fsck.

Raises ``records.LineError`` for a line that is not a record (structure).
Returns ``(record, epoch, reason)``: ``reason`` is None when the line was
applied, or says why a well-formed line is not a valid step (duplicate
ticket, result for an unknown ticket, illegal transition); such a line is
skipped, since the current status is the last *valid* transition in log order.

``apply_request_lines`` / ``apply_result_lines`` are the store's start-up and
catch-up form: a run of lines all in the store's canonical form is applied in
one go (results from their fields, without building the records); otherwise
the caller applies the lines one by one with the full checks.
"""
from __future__ import annotations

from opsledger.server.ledger import records
from opsledger.server.ledger.jsonl.index import LedgerIndex, UnknownTicket
from opsledger.server.ledger.machine import TransitionRefused


def apply_request_line(index: LedgerIndex, line: bytes, offset: int) -> tuple[dict, int, str | None]:
    rec, epoch = records.parse_request_line(line)
    refused = index.add_requests([(rec, epoch)], [offset])
    return rec, epoch, str(refused[0][1]) if refused else None


def apply_result_line(index: LedgerIndex, line: bytes, offset: int) -> tuple[dict, int, str | None]:
    rec, epoch = records.parse_result_line(line)
    refused = index.apply_results([(rec["request_id"], rec["result_id"], rec["status"], epoch)], [offset])
    return rec, epoch, _result_refused(rec["request_id"], refused[0][1]) if refused else None


def apply_request_lines(index: LedgerIndex, lines: list[bytes], offsets: list[int]) -> list[tuple[int, str]] | None:
    """Lines in the store's canonical form, applied in one go: (position, reason) of each
    skipped one; None, with nothing applied, when any line is not in that form (the
    caller then applies them one by one, with every check and its reason)."""
    parsed = records.canonical_requests(lines)
    if parsed is None:
        return None
    return [(i, str(exc)) for i, exc in index.add_requests(parsed, offsets)]


def apply_result_lines(index: LedgerIndex, lines: list[bytes], offsets: list[int]) -> list[tuple[int, str]] | None:
    """``apply_request_lines`` for the results log, without building the records."""
    fields = records.canonical_results(lines)
    if fields is None:
        return None
    return [(i, _result_refused(fields[i][0], exc)) for i, exc in index.apply_results(fields, offsets)]


def _result_refused(request_id: str, exc: UnknownTicket | TransitionRefused) -> str:
    if isinstance(exc, UnknownTicket):
        return f"result for unknown ticket {request_id}"
    return f"illegal transition for {request_id}: {exc}"
