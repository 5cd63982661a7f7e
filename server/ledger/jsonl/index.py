"""The in-memory ledger index: current status of every ticket, board order.

Pure data structure (no I/O): the store feeds it records in log order, at
start-up (replay) and after each durable append. Board pages and filters are
served from sorted per-status / per-type lists, never by scanning every ticket.

Board order key: ``epoch(requested_at) << 32 | seq`` where ``seq`` is the
request's line number, so equal times put the later submission first.
"""
from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator

from sortedcontainers import SortedList

from server.ledger import records
from server.ledger.machine import DONE, FAILED, IN_PROGRESS, OPEN, STATUSES, TransitionRefused, event_for_result, next_status
from server.ledger.validation import REQUEST_TYPES

_SEQ_BITS = 32


class UnknownTicket(KeyError):
    pass


class DuplicateTicket(ValueError):
    pass


class Entry:
    """One ticket: ids, status and where its lines are (records stay on disk)."""

    __slots__ = (
        "request_id", "key", "seq", "request_type", "status",
        "request_offset", "first_offset", "last_offset", "processed_key",
    )

    def __init__(self, request_id: str, key: int, seq: int, request_type: str, request_offset: int) -> None:
        self.request_id = request_id
        self.key = key
        self.seq = seq
        self.request_type = request_type
        self.status = OPEN
        self.request_offset = request_offset
        self.first_offset: int | None = None  # the IN_PROGRESS result line
        self.last_offset: int | None = None  # the latest result line
        self.processed_key = None  # position in the by-processed-time lists

    def result_offsets(self) -> list[int]:
        """A valid history has at most two results: IN_PROGRESS, then DONE or FAILED."""
        if self.first_offset is None:
            return []
        if self.last_offset == self.first_offset:
            return [self.first_offset]
        return [self.first_offset, self.last_offset]


class LedgerIndex:
    def __init__(self) -> None:
        self.by_id: dict[str, Entry] = {}
        self.by_key: dict[int, Entry] = {}
        self.idempotency: dict[str, str] = {}
        # Token-derived ids of IN_PROGRESS results -> request_id: a retried
        # claim-next finds its ticket here (see decide). Only token-made ids.
        self.token_claims: dict[str, str] = {}
        self.request_count = 0
        self.result_count = 0
        self._by_status = {s: SortedList() for s in STATUSES}
        self._by_type = {t: SortedList() for t in REQUEST_TYPES}
        self._by_pair = {(s, t): SortedList() for s in STATUSES for t in REQUEST_TYPES}
        # OPEN tickets by type, in log order (seq), for ConsumeNext.
        self._open_by_type = {t: SortedList() for t in REQUEST_TYPES}
        self._by_seq_open: dict[int, Entry] = {}
        # By time of the last result: DONE/FAILED as epoch<<32|seq (counting
        # recent ones), IN_PROGRESS as (epoch, board key) (finding stale ones).
        self._processed = {s: SortedList() for s in STATUSES if s != OPEN}
        self._bulk = False

    # -- feeding -------------------------------------------------------------
    def begin_bulk(self) -> None:
        """Replay of a whole log: sorted views are rebuilt once at the end."""
        self._bulk = True

    def end_bulk(self) -> None:
        self._bulk = False
        by_status = {s: [] for s in STATUSES}
        by_type = {t: [] for t in REQUEST_TYPES}
        by_pair = {k: [] for k in self._by_pair}
        processed = {s: [] for s in self._processed}
        open_by_type = {t: [] for t in REQUEST_TYPES}
        self._by_seq_open = {}
        for e in self.by_id.values():
            by_status[e.status].append(e.key)
            by_type[e.request_type].append(e.key)
            by_pair[(e.status, e.request_type)].append(e.key)
            if e.status == OPEN:
                open_by_type[e.request_type].append(e.seq)
                self._by_seq_open[e.seq] = e
            else:
                processed[e.status].append(e.processed_key)
        self._by_status = {k: SortedList(v) for k, v in by_status.items()}
        self._by_type = {k: SortedList(v) for k, v in by_type.items()}
        self._by_pair = {k: SortedList(v) for k, v in by_pair.items()}
        self._processed = {k: SortedList(v) for k, v in processed.items()}
        self._open_by_type = {k: SortedList(v) for k, v in open_by_type.items()}

    def add_request(self, rec: dict, epoch: int, offset: int) -> Entry:
        rid = rec["request_id"]
        if rid in self.by_id:
            raise DuplicateTicket(f"request_id {rid} already recorded")
        seq = self.request_count
        self.request_count += 1
        key = (epoch << _SEQ_BITS) | seq
        entry = Entry(rid, key, seq, rec["request_type"], offset)
        self.by_id[rid] = entry
        self.by_key[key] = entry
        ikey = rec.get("idempotency_key")
        if ikey is not None:
            self.idempotency.setdefault(ikey, rid)
        if not self._bulk:
            self._place(entry)
        return entry

    def check_result(self, rec: dict) -> Entry:
        """The entry a result applies to; raises when it is not a valid next step."""
        entry = self.by_id.get(rec["request_id"])
        if entry is None:
            raise UnknownTicket(rec["request_id"])
        next_status(entry.status, event_for_result(rec["status"]))
        return entry

    def apply_result(self, rec: dict, epoch: int, offset: int) -> Entry:
        entry = self.check_result(rec)
        status = rec["status"]
        if not self._bulk:
            self._displace(entry)
            if entry.processed_key is not None:
                self._processed[entry.status].remove(entry.processed_key)
        entry.processed_key = (epoch, entry.key) if status == IN_PROGRESS else (epoch << _SEQ_BITS) | entry.seq
        entry.status = status
        if status == IN_PROGRESS and records.made_by_token(rec["result_id"]):
            self.token_claims[rec["result_id"]] = entry.request_id
        if entry.first_offset is None:
            entry.first_offset = offset
        entry.last_offset = offset
        self.result_count += 1
        if not self._bulk:
            self._processed[status].add(entry.processed_key)
            self._place(entry)
        return entry

    def _lists(self, entry: Entry) -> tuple[SortedList, ...]:
        s, t = entry.status, entry.request_type
        return (self._by_status[s], self._by_type[t], self._by_pair[(s, t)])

    def _place(self, entry: Entry) -> None:
        for lst in self._lists(entry):
            lst.add(entry.key)
        if entry.status == OPEN:
            self._open_by_type[entry.request_type].add(entry.seq)
            self._by_seq_open[entry.seq] = entry

    def _displace(self, entry: Entry) -> None:
        for lst in self._lists(entry):
            lst.remove(entry.key)
        if entry.status == OPEN:
            self._open_by_type[entry.request_type].remove(entry.seq)
            del self._by_seq_open[entry.seq]

    # -- reading -------------------------------------------------------------
    def get(self, request_id: str) -> Entry | None:
        return self.by_id.get(request_id)

    def claimed_with(self, result_id: str) -> str | None:
        """The ticket whose IN_PROGRESS result has this token-derived id."""
        return self.token_claims.get(result_id)

    def counts(self) -> dict[str, int]:
        return {s: len(self._by_status[s]) for s in STATUSES}

    def finished_since(self, epoch: int) -> dict[str, int]:
        """DONE and FAILED tickets whose last result is at or after ``epoch``."""
        out = {}
        for status in (DONE, FAILED):
            lst = self._processed[status]
            out[status] = len(lst) - lst.bisect_left(epoch << _SEQ_BITS)
        return out

    def in_progress_before(self, epoch: int) -> Iterator[Entry]:
        """IN_PROGRESS tickets whose last result is older than ``epoch``, oldest first."""
        for _when, key in self._processed[IN_PROGRESS].irange(maximum=(epoch, -1), inclusive=(True, False)):
            yield self.by_key[key]

    def count_in_progress_before(self, epoch: int) -> int:
        return self._processed[IN_PROGRESS].bisect_left((epoch, -1))

    def open_in_order(self, types: Iterable[str] = ()) -> Iterator[Entry]:
        """OPEN tickets of ``types`` (all when empty), oldest submission first."""
        chosen = tuple(types) or REQUEST_TYPES
        for seq in heapq.merge(*(self._open_by_type[t] for t in chosen)):
            yield self._by_seq_open[seq]

    def _selected(self, statuses: tuple[str, ...], types: tuple[str, ...]) -> list[SortedList]:
        if statuses and types:
            return [self._by_pair[(s, t)] for s in statuses for t in types]
        if statuses:
            return [self._by_status[s] for s in statuses]
        if types:
            return [self._by_type[t] for t in types]
        return [_Union([self._by_status[s] for s in STATUSES])]

    def page(
        self,
        statuses: tuple[str, ...],
        types: tuple[str, ...],
        page_size: int,
        before: int | None,
    ) -> tuple[list[Entry], int | None, int]:
        """Rows with key < ``before`` (all when None), newest first.

        Returns (entries, cursor of the next page or None, total matching).
        """
        lists = self._selected(statuses, types)
        iters = [lst.irange(maximum=before, inclusive=(True, False), reverse=True) for lst in lists]
        merged: Iterator[int] = iters[0] if len(iters) == 1 else heapq.merge(*iters, reverse=True)
        keys = list(itertools.islice(merged, page_size + 1))
        more = len(keys) > page_size
        keys = keys[:page_size]
        total = sum(len(lst) for lst in lists)
        next_cursor = keys[-1] if more and keys else None
        return [self.by_key[k] for k in keys], next_cursor, total


class _Union:
    """All tickets = the union of the per-status lists (saves one list)."""

    def __init__(self, lists: list[SortedList]) -> None:
        self.lists = lists

    def irange(self, maximum, inclusive, reverse) -> Iterator[int]:
        return heapq.merge(
            *(lst.irange(maximum=maximum, inclusive=inclusive, reverse=reverse) for lst in self.lists),
            reverse=True,
        )

    def __len__(self) -> int:
        return sum(len(lst) for lst in self.lists)


__all__ = ["Entry", "LedgerIndex", "UnknownTicket", "DuplicateTicket", "TransitionRefused"]
