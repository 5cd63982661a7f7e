"""The in-memory ledger index: current status of every ticket, board order.

Pure data structure (no I/O): the store feeds it records in log order, at
start-up (replay) and after each durable append. Board pages and filters are
served from sorted per-(status, type) views, never by scanning every ticket.

Board order key: ``epoch(requested_at) << 32 | seq`` where ``seq`` is the
ticket's number in request-log order, so equal times put the later
submission first.

No Python object per ticket: a ticket is a column position ``seq`` in a set
of typed arrays (struct of arrays: id bytes, times, status, type, line
offsets). A ticket is found by id in a dict only while it is new; tickets
loaded from a checkpoint are found by binary search in a sorted array of id
prefixes. DONE and FAILED never change again, so their sorted views are a
sorted array plus a small sorted list of later arrivals; only OPEN and
IN_PROGRESS (the working set) live in sorted lists that move.
"""
from __future__ import annotations

import bisect
import heapq
import itertools
from array import array
from collections.abc import Iterable, Iterator

from sortedcontainers import SortedList

from opsledger.server.ledger import records
from opsledger.server.ledger.machine import (
    DONE,
    EVENT_FOR_RESULT_STATUS,
    FAILED,
    IN_PROGRESS,
    OPEN,
    STATUSES,
    TRANSITIONS,
    TransitionRefused,
    event_for_result,
    next_status,
)
from opsledger.server.ledger.validation import REQUEST_TYPES

_SEQ_BITS = 32
_SEQ_MASK = (1 << _SEQ_BITS) - 1
_NONE = -1  # an offset column's "no line"
_STATUS_CODE = {s: i for i, s in enumerate(STATUSES)}
_TYPE_CODE = {t: i for i, t in enumerate(REQUEST_TYPES)}
_OPEN_CODE = _STATUS_CODE[OPEN]
_FINAL_CODES = (_STATUS_CODE[DONE], _STATUS_CODE[FAILED])
# (status code before, status code of a result line) pairs the machine allows, as a
# set for replay's sake; ``next_status`` stays the rule and says why a pair is refused.
_STEPS = frozenset((_STATUS_CODE[cur], _STATUS_CODE[new]) for cur in STATUSES
                   for new, event in EVENT_FOR_RESULT_STATUS.items() if TRANSITIONS.get((cur, event)) == new)

# The columns, in checkpoint order: name -> array typecode.
COLUMNS = {
    "epoch": "q",       # requested_at, epoch seconds
    "type": "b",        # index into REQUEST_TYPES
    "status": "b",      # index into STATUSES
    "request_offset": "q",
    "first_offset": "q",  # the IN_PROGRESS result line, or -1
    "last_offset": "q",   # the latest result line, or -1
    "processed": "q",     # processed_at of the latest result, epoch seconds
}


def uid_bytes(request_id: str) -> bytes:
    return bytes.fromhex(request_id.replace("-", ""))


def _uid_text(raw: bytes) -> str:
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class UnknownTicket(KeyError):
    pass


class DuplicateTicket(ValueError):
    pass


class Entry:
    """One ticket as it was when read from the index (a view; the index keeps columns)."""

    __slots__ = ("request_id", "key", "seq", "request_type", "status", "request_offset", "first_offset",
                 "last_offset")

    def __init__(self, request_id: str, key: int, seq: int, request_type: str, status: str,
                 request_offset: int, first_offset: int | None, last_offset: int | None) -> None:
        self.request_id = request_id
        self.key = key
        self.seq = seq
        self.request_type = request_type
        self.status = status
        self.request_offset = request_offset
        self.first_offset = first_offset  # the IN_PROGRESS result line
        self.last_offset = last_offset  # the latest result line

    def result_offsets(self) -> list[int]:
        """A valid history has at most two results: IN_PROGRESS, then DONE or FAILED."""
        if self.first_offset is None:
            return []
        if self.last_offset == self.first_offset:
            return [self.first_offset]
        return [self.first_offset, self.last_offset]  # type: ignore[list-item]


class Grown:
    """A sorted set of ints that only grows: a sorted array (built in bulk or
    loaded) plus a sorted list of what came later."""

    __slots__ = ("base", "delta")

    def __init__(self, base: array | None = None) -> None:
        self.base = base if base is not None else array("q")
        self.delta = SortedList()

    def add(self, value: int) -> None:
        self.delta.add(value)

    def __len__(self) -> int:
        return len(self.base) + len(self.delta)

    def bisect_left(self, value: int) -> int:
        return bisect.bisect_left(self.base, value) + self.delta.bisect_left(value)

    def irange(self, maximum, inclusive, reverse) -> Iterator[int]:
        """Values below ``maximum`` (all when None), largest first: the one form pages use."""
        assert reverse and inclusive == (True, False)
        hi = len(self.base) if maximum is None else bisect.bisect_left(self.base, maximum)
        older = map(self.base.__getitem__, range(hi - 1, -1, -1))
        if not self.delta:
            return older
        return heapq.merge(older, self.delta.irange(maximum=maximum, inclusive=inclusive, reverse=True),
                           reverse=True)


class LedgerIndex:
    def __init__(self) -> None:
        self.cols: dict[str, array] = {name: array(code) for name, code in COLUMNS.items()}
        self.uids = bytearray()  # 16 bytes per ticket, in seq order
        # Finding a ticket by id: tickets loaded from a checkpoint by binary
        # search (sorted 64-bit id prefixes, their seqs); later ones by dict.
        self._sorted_prefix = array("Q")
        self._sorted_seq = array("q")
        self._seq_of: dict[bytes, int] = {}
        self.idempotency: dict[str, str] = {}
        # Token-derived ids of IN_PROGRESS results -> request_id: a retried
        # claim-next finds its ticket here (see decide). Only token-made ids.
        self.token_claims: dict[str, str] = {}
        self.request_count = 0
        self.result_count = 0
        # Board views per (status code, type code): sorted board keys.
        self._views: dict[tuple[int, int], SortedList | Grown] = {}
        # OPEN tickets by type, in log order (seq), for ConsumeNext.
        self._open_by_type: list[SortedList] = []
        # By time of the last result: DONE/FAILED as epoch<<32|seq (counting
        # recent ones), IN_PROGRESS as (epoch, board key) (finding stale ones).
        self._processed: dict[int, SortedList | Grown] = {}
        self._reset_views()
        self._bulk = False
        # During a start-up tail replay: seq -> (status, processed) before the tail
        # first touched it (None for a ticket new in the tail); views updated at the end.
        self._tail: dict[int, tuple[int, int] | None] | None = None

    def _reset_views(self) -> None:
        for code in _STATUS_CODE.values():
            for t in range(len(REQUEST_TYPES)):
                self._views[(code, t)] = Grown() if code in _FINAL_CODES else SortedList()
        self._open_by_type = [SortedList() for _ in REQUEST_TYPES]
        self._processed = {code: Grown() if code in _FINAL_CODES else SortedList()
                           for code in _STATUS_CODE.values() if code != _STATUS_CODE[OPEN]}

    # -- finding --------------------------------------------------------------
    def _seq(self, uid: bytes) -> int | None:
        seq = self._seq_of.get(uid)
        if seq is not None or not self._sorted_prefix:
            return seq
        prefix = int.from_bytes(uid[:8], "big")
        i = bisect.bisect_left(self._sorted_prefix, prefix)
        while i < len(self._sorted_prefix) and self._sorted_prefix[i] == prefix:
            seq = self._sorted_seq[i]
            if self.uids[seq * 16:seq * 16 + 16] == uid:
                return seq
            i += 1
        return None

    def _entry(self, seq: int) -> Entry:
        c = self.cols
        first, last = c["first_offset"][seq], c["last_offset"][seq]
        return Entry(_uid_text(bytes(self.uids[seq * 16:seq * 16 + 16])), (c["epoch"][seq] << _SEQ_BITS) | seq, seq,
                     REQUEST_TYPES[c["type"][seq]], STATUSES[c["status"][seq]], c["request_offset"][seq],
                     None if first == _NONE else first, None if last == _NONE else last)

    def _key(self, seq: int) -> int:
        return (self.cols["epoch"][seq] << _SEQ_BITS) | seq

    # -- feeding -------------------------------------------------------------
    def begin_bulk(self) -> None:
        """Replay of a whole log: sorted views are built once at the end."""
        self._bulk = True

    def end_bulk(self) -> None:
        self._bulk = False
        c = self.cols
        nt = len(REQUEST_TYPES)
        open_code, ip = _STATUS_CODE[OPEN], _STATUS_CODE[IN_PROGRESS]
        by_view: list[list[int]] = [[] for _ in range(len(STATUSES) * nt)]
        open_seqs: list[list[int]] = [[] for _ in range(nt)]
        finals: dict[int, list[int]] = {code: [] for code in _FINAL_CODES}
        in_progress = []
        # one pass over the columns; each list is sorted once at the end
        for seq, (e, s, t, when) in enumerate(zip(c["epoch"], c["status"], c["type"], c["processed"])):
            key = (e << _SEQ_BITS) | seq
            by_view[s * nt + t].append(key)
            if s == open_code:
                open_seqs[t].append(seq)
            elif s == ip:
                in_progress.append((when, key))
            else:
                finals[s].append((when << _SEQ_BITS) | seq)
        for (s, t) in self._views:
            lst = by_view[s * nt + t]
            lst.sort()
            self._views[(s, t)] = Grown(array("q", lst)) if s in _FINAL_CODES else SortedList(lst)
        self._open_by_type = [SortedList(lst) for lst in open_seqs]
        for code, lst in finals.items():
            lst.sort()
            self._processed[code] = Grown(array("q", lst))
        self._processed[ip] = SortedList(in_progress)

    def begin_tail(self) -> None:
        """Replay of the lines after a checkpoint: the columns are updated line by
        line, each touched ticket's place in the sorted views once at the end."""
        self._tail = {}

    def end_tail(self) -> None:
        touched, self._tail = self._tail or {}, None
        c = self.cols
        open_code, ip = _STATUS_CODE[OPEN], _STATUS_CODE[IN_PROGRESS]
        final_views: dict[tuple[int, int], list[int]] = {}
        final_processed: dict[int, list[int]] = {code: [] for code in _FINAL_CODES}
        for seq, before in touched.items():
            t = c["type"][seq]
            key = self._key(seq)
            if before is not None:  # was OPEN or IN_PROGRESS (a final ticket takes no result)
                old, old_when = before
                self._views[(old, t)].remove(key)  # type: ignore[union-attr]
                if old == open_code:
                    self._open_by_type[t].remove(seq)
                else:
                    self._processed[ip].remove((old_when, key))  # type: ignore[union-attr]
            new, when = c["status"][seq], c["processed"][seq]
            if new in _FINAL_CODES:
                final_views.setdefault((new, t), []).append(key)
                final_processed[new].append((when << _SEQ_BITS) | seq)
            else:
                self._views[(new, t)].add(key)
                if new == open_code:
                    self._open_by_type[t].add(seq)
                else:
                    self._processed[ip].add((when, key))  # type: ignore[arg-type]
        for k, keys in final_views.items():
            self._views[k].delta.update(keys)
        for code, keys in final_processed.items():
            self._processed[code].delta.update(keys)

    def add_request(self, rec: dict, epoch: int, offset: int) -> None:
        refused = self.add_requests([(rec, epoch)], [offset])
        if refused:
            raise refused[0][1]

    def add_requests(self, items: list[tuple[dict, int]], offsets: list[int]) -> list[tuple[int, DuplicateTicket]]:
        """``add_request`` of each (record, epoch of requested_at) at its offset, in
        order (replay feeds a whole chunk of lines); the refused ones by position."""
        refused = []
        c = self.cols
        epochs, types, statuses, firsts, lasts = c["epoch"], c["type"], c["status"], c["first_offset"], c["last_offset"]
        seq_of, uids, idempotency, tail = self._seq_of, self.uids, self.idempotency, self._tail
        live = tail is None and not self._bulk
        by_id = not self._sorted_prefix  # else tickets from a checkpoint are looked up by prefix too
        for i, ((rec, epoch), offset) in enumerate(zip(items, offsets)):
            rid = rec["request_id"]
            uid = bytes.fromhex(rid.replace("-", ""))
            if uid in seq_of or (not by_id and self._seq(uid) is not None):
                refused.append((i, DuplicateTicket(f"request_id {rid} already recorded")))
                continue
            seq = self.request_count
            self.request_count = seq + 1
            seq_of[uid] = seq
            uids += uid
            t = _TYPE_CODE[rec["request_type"]]
            epochs.append(epoch)
            types.append(t)
            statuses.append(_OPEN_CODE)
            c["request_offset"].append(offset)
            firsts.append(_NONE)
            lasts.append(_NONE)
            c["processed"].append(0)
            ikey = rec.get("idempotency_key")
            if ikey is not None:
                idempotency.setdefault(ikey, rid)
            if tail is not None:
                tail[seq] = None
            elif live:
                self._views[(_OPEN_CODE, t)].add((epoch << _SEQ_BITS) | seq)
                self._open_by_type[t].add(seq)
        return refused

    def apply_result(self, rec: dict, epoch: int, offset: int) -> None:
        refused = self.apply_results([(rec["request_id"], rec["result_id"], rec["status"], epoch)], [offset])
        if refused:
            raise refused[0][1]

    def apply_results(self, fields: list[tuple[str, str, str, int]], offsets: list[int],
                      ) -> list[tuple[int, UnknownTicket | TransitionRefused]]:
        """``apply_result`` of each (request_id, result_id, status, epoch of processed_at)
        at its offset, in order (replay finds these without building the records);
        the refused ones by position (nothing of theirs applied)."""
        refused: list[tuple[int, UnknownTicket | TransitionRefused]] = []
        c = self.cols
        statuses, processed, firsts, lasts = c["status"], c["processed"], c["first_offset"], c["last_offset"]
        seq_of, tail, steps = self._seq_of, self._tail, _STEPS
        live = tail is None and not self._bulk
        in_progress = _STATUS_CODE[IN_PROGRESS]
        for i, ((request_id, result_id, status, epoch), offset) in enumerate(zip(fields, offsets)):
            uid = bytes.fromhex(request_id.replace("-", ""))
            seq = seq_of.get(uid)  # replay's common case first: a ticket added since the checkpoint
            if seq is None and (seq := self._seq(uid)) is None:  # else one from the checkpoint, by prefix
                refused.append((i, UnknownTicket(request_id)))
                continue
            old, new = statuses[seq], _STATUS_CODE.get(status, -1)
            if (old, new) not in steps:
                try:
                    next_status(STATUSES[old], event_for_result(status))  # raises, saying why
                except TransitionRefused as exc:
                    refused.append((i, exc))
                    continue
            if tail is not None:
                if seq not in tail:
                    tail[seq] = (old, processed[seq])
            elif live:
                t = c["type"][seq]
                key = self._key(seq)
                self._views[(old, t)].remove(key)  # type: ignore[union-attr]  # OPEN or IN_PROGRESS: the final ones never move
                self._views[(new, t)].add(key)
                if old == _OPEN_CODE:
                    self._open_by_type[t].remove(seq)
                else:
                    self._processed[old].remove((processed[seq], key))  # type: ignore[union-attr]
                self._processed[new].add((epoch, key) if new == in_progress else (epoch << _SEQ_BITS) | seq)  # type: ignore[arg-type]
            if new == in_progress and records.made_by_token(result_id):
                self.token_claims[result_id] = request_id
            statuses[seq] = new
            processed[seq] = epoch
            if old == _OPEN_CODE:  # the first result (a ticket's results go OPEN -> IN_PROGRESS -> final)
                firsts[seq] = offset
            lasts[seq] = offset
            self.result_count += 1
        return refused

    # -- reading -------------------------------------------------------------
    def get(self, request_id: str) -> Entry | None:
        if not records.is_canonical_uuid(request_id):
            return None
        seq = self._seq(uid_bytes(request_id))
        return None if seq is None else self._entry(seq)

    def claimed_with(self, result_id: str) -> str | None:
        """The ticket whose IN_PROGRESS result has this token-derived id."""
        return self.token_claims.get(result_id)

    def counts(self) -> dict[str, int]:
        return {s: sum(len(self._views[(code, t)]) for t in range(len(REQUEST_TYPES)))
                for s, code in _STATUS_CODE.items()}

    def finished_since(self, epoch: int) -> dict[str, int]:
        """DONE and FAILED tickets whose last result is at or after ``epoch``."""
        out = {}
        for status in (DONE, FAILED):
            lst = self._processed[_STATUS_CODE[status]]
            out[status] = len(lst) - lst.bisect_left(epoch << _SEQ_BITS)
        return out

    def in_progress_before(self, epoch: int) -> Iterator[Entry]:
        """IN_PROGRESS tickets whose last result is older than ``epoch``, oldest first."""
        lst = self._processed[_STATUS_CODE[IN_PROGRESS]]
        for _when, key in lst.irange(maximum=(epoch, -1), inclusive=(True, False)):  # type: ignore[call-arg, misc]
            yield self._entry(key & _SEQ_MASK)

    def count_in_progress_before(self, epoch: int) -> int:
        return self._processed[_STATUS_CODE[IN_PROGRESS]].bisect_left((epoch, -1))  # type: ignore[arg-type]

    def open_ids_in_order(self, types: Iterable[str] = ()) -> Iterator[str]:
        """Ids of OPEN tickets of ``types`` (all when empty), oldest submission first
        (ids only: a claim passes over tickets, and an Entry each would cost more)."""
        chosen = tuple(types) or REQUEST_TYPES
        uids = self.uids
        for seq in heapq.merge(*(self._open_by_type[_TYPE_CODE[t]] for t in chosen)):
            yield _uid_text(bytes(uids[seq * 16:seq * 16 + 16]))

    def page(
        self,
        statuses: tuple[str, ...],
        types: tuple[str, ...],
        page_size: int,
        before: int | None,
    ) -> tuple[list[tuple[int, int | None]], int | None, int]:
        """Rows with key < ``before`` (all when None), newest first.

        Returns (where each row's lines are: request offset and last result
        offset or None, cursor of the next page or None, total matching).
        A row needs only its two lines, so no Entry is built for it.
        """
        views = [self._views[(_STATUS_CODE[s], _TYPE_CODE[t])]
                 for s in (statuses or STATUSES) for t in (types or REQUEST_TYPES)]
        total = sum(len(v) for v in views)
        views = [v for v in views if len(v)]
        iters = [v.irange(maximum=before, inclusive=(True, False), reverse=True) for v in views]
        merged: Iterator[int] = iters[0] if len(iters) == 1 else heapq.merge(*iters, reverse=True)
        keys = list(itertools.islice(merged, page_size + 1))
        more = len(keys) > page_size
        keys = keys[:page_size]
        next_cursor = keys[-1] if more and keys else None
        request_at, last_at = self.cols["request_offset"], self.cols["last_offset"]
        where = []
        for k in keys:
            seq = k & _SEQ_MASK
            last = last_at[seq]
            where.append((request_at[seq], None if last == _NONE else last))
        return where, next_cursor, total

    # -- checkpoint --------------------------------------------------------------
    def snapshot(self) -> dict:
        """A copy of everything, taken under the store's lock (memcpy-speed copies;
        the sorted views' later arrivals are merged by ``export`` outside it)."""
        return {
            "cols": {name: array(col.typecode, col) for name, col in self.cols.items()},
            "uids": bytes(self.uids),
            "sorted_prefix": array("Q", self._sorted_prefix),
            "sorted_seq": array("q", self._sorted_seq),
            "new_ids": list(self._seq_of.items()),
            "views": {k: (array("q", v.base), list(v.delta)) if isinstance(v, Grown) else list(v)
                      for k, v in self._views.items()},
            "processed": {k: (array("q", v.base), list(v.delta)) if isinstance(v, Grown) else list(v)
                          for k, v in self._processed.items()},
            "idempotency": dict(self.idempotency),
            "token_claims": dict(self.token_claims),
            "request_count": self.request_count,
            "result_count": self.result_count,
        }


def export(snap: dict) -> tuple[dict, dict[str, array]]:
    """(small JSON-able part, named arrays) of a snapshot: what a checkpoint stores.

    The id lookup is stored sorted, so a loaded index needs no dict entry per
    ticket; finished views and in-progress times are stored as arrays."""
    arrays: dict[str, array] = dict(snap["cols"])
    pairs = list(zip(snap["sorted_prefix"], snap["sorted_seq"]))
    pairs += [(int.from_bytes(uid[:8], "big"), seq) for uid, seq in snap["new_ids"]]
    pairs.sort()
    arrays["sorted_prefix"] = array("Q", (p for p, _ in pairs))
    arrays["sorted_seq"] = array("q", (s for _, s in pairs))
    arrays["uids"] = array("B", snap["uids"])
    for (s, t), v in snap["views"].items():
        if isinstance(v, tuple):
            base, delta = v
            arrays[f"view.{s}.{t}"] = array("q", heapq.merge(base, delta)) if delta else base
        else:
            arrays[f"view.{s}.{t}"] = array("q", v)
    for code, v in snap["processed"].items():
        if isinstance(v, tuple):
            base, delta = v
            arrays[f"processed.{code}"] = array("q", heapq.merge(base, delta)) if delta else base
        else:  # IN_PROGRESS: (epoch, key) pairs, flattened
            arrays[f"processed.{code}"] = array("q", itertools.chain.from_iterable(v))
    meta = {"idempotency": snap["idempotency"], "token_claims": snap["token_claims"],
            "request_count": snap["request_count"],
            "result_count": snap["result_count"]}
    return meta, arrays


def restore(meta: dict, arrays: dict[str, array]) -> LedgerIndex:
    """A LedgerIndex from a checkpoint's parts (no per-ticket work beyond the working set)."""
    index = LedgerIndex()
    index.cols = {name: arrays[name] for name in COLUMNS}
    index.uids = bytearray(arrays["uids"].tobytes())
    index._sorted_prefix = arrays["sorted_prefix"]
    index._sorted_seq = arrays["sorted_seq"]
    index.idempotency = dict(meta["idempotency"])
    index.token_claims = dict(meta["token_claims"])
    index.request_count = meta["request_count"]
    index.result_count = meta["result_count"]
    n = index.request_count
    if any(len(index.cols[name]) != n for name in COLUMNS) or len(index.uids) != 16 * n \
            or len(index._sorted_seq) != n or len(index._sorted_prefix) != n:
        raise ValueError("checkpoint columns disagree on the number of tickets")
    for (s, t) in list(index._views):
        keys = arrays[f"view.{s}.{t}"]
        index._views[(s, t)] = Grown(keys) if s in _FINAL_CODES else SortedList(keys)
    open_code = _STATUS_CODE[OPEN]
    for t in range(len(REQUEST_TYPES)):
        index._open_by_type[t] = SortedList(k & _SEQ_MASK for k in index._views[(open_code, t)])  # type: ignore[union-attr]
    for code in list(index._processed):
        values = arrays[f"processed.{code}"]
        if code in _FINAL_CODES:
            index._processed[code] = Grown(values)
        else:
            index._processed[code] = SortedList(zip(values[0::2], values[1::2]))
    return index


__all__ = ["Entry", "LedgerIndex", "UnknownTicket", "DuplicateTicket", "TransitionRefused", "export", "restore"]
