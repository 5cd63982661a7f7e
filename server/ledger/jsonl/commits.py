"""The order of the JSONL ledger's events: the commit boundaries file.

The two logs alone do not say how their lines interleave (a batch appends
its request lines, then its result lines). So every batch, still under the
root's lock, appends one 16-byte record to ``state/tickets/.ledger.commits``:
the sizes of both logs after it. The ledger's event order is then the same
for every process on the root: batch after batch as committed, and inside a
batch its requests, then its results (so a ticket's request always comes
before its results).

A position in that order is a pair of byte offsets ``(r, s)``: every request
line before offset ``r`` and every result line before ``s`` has happened.
An event's revision is the position just after it. Positions are facts of
the logs (lines never move), so a revision stays valid across restarts and
processes.

The file is derived data, written after the logs' own fdatasync and not
synced itself: a boundary lost in a crash (or never written, by a process
killed between its log sync and this write) is replaced, under the lock, by
one boundary at the logs' current sizes — that span then counts as one batch,
whose requests come before its results, which keeps every promise above.
"""
from __future__ import annotations

import os
import struct

COMMITS = "state/tickets/.ledger.commits"
_RECORD = struct.Struct("<QQ")
SIZE = _RECORD.size

Position = tuple[int, int]  # (requests log offset, results log offset)


def encode(pos: Position) -> bytes:
    return _RECORD.pack(*pos)


def read_at(fd: int, index: int) -> Position:
    """Boundary ``index`` (0-based); the position after that batch."""
    return _RECORD.unpack(os.pread(fd, SIZE, index * SIZE))


def read_range(fd: int, start: int, stop: int) -> list[Position]:
    data = os.pread(fd, (stop - start) * SIZE, start * SIZE)
    return [_RECORD.unpack_from(data, i) for i in range(0, len(data) - len(data) % SIZE, SIZE)]


def valid_prefix(fd: int, known: int, previous: Position, sizes: Position) -> tuple[int, Position]:
    """Check the records after the first ``known``: each must move forward and
    stay within the logs' ``sizes``. Returns (records that are valid, last one)."""
    end = os.fstat(fd).st_size // SIZE
    last = previous
    count = known
    for pos in read_range(fd, known, end):
        forward = pos[0] >= last[0] and pos[1] >= last[1] and pos != last
        if not forward or pos[0] > sizes[0] or pos[1] > sizes[1]:
            break
        last = pos
        count += 1
    return count, last


def first_after(fd: int, count: int, pos: Position, hint: int = 0) -> int:
    """Index of the first boundary strictly after ``pos`` (``count`` when none).
    Boundaries move forward in both offsets, so they are sorted either way."""
    if 0 <= hint < count and read_at(fd, hint) > pos and (hint == 0 or read_at(fd, hint - 1) <= pos):
        return hint
    lo, hi = 0, count
    while lo < hi:
        mid = (lo + hi) // 2
        if read_at(fd, mid) <= pos:
            lo = mid + 1
        else:
            hi = mid
    return lo
