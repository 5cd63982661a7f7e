"""Line numbers of an append-only JSONL file, from a sparse index.

Only every ``STRIDE``-th line's start offset is kept (8 bytes per STRIDE
lines); a line number or a line is found from the nearest mark by reading
at most STRIDE - 1 lines forward. Lines never move once written, so the
marks stay valid while the file grows.
"""
from __future__ import annotations

import bisect
import os
from array import array

STRIDE = 32
_CHUNK = 65536


class SparseLines:
    """Marks of one file; the caller serialises ``add`` with the lookups (one lock)."""

    def __init__(self) -> None:
        self._marks = array("Q")
        self.count = 0

    def add(self, offset: int) -> None:
        """A new line starts at ``offset`` (called in file order)."""
        if self.count % STRIDE == 0:
            self._marks.append(offset)
        self.count += 1

    def add_all(self, offsets: list[int]) -> None:
        """``add`` of each offset in turn."""
        skip = -self.count % STRIDE  # lines before the next mark
        self._marks.extend(offsets[skip::STRIDE])
        self.count += len(offsets)

    def export(self) -> array:
        """A copy of the marks (the index checkpoint stores them)."""
        return array("Q", self._marks)

    @classmethod
    def restore(cls, marks: array, count: int) -> SparseLines:
        if len(marks) != -(-count // STRIDE):
            raise ValueError("result line marks do not match the results log's line count")
        lines = cls()
        lines._marks, lines.count = marks, count
        return lines

    def locate(self, n: int) -> tuple[int, int] | None:
        """Where to start for line ``n`` (1-based): (a mark's offset, lines to skip), or None."""
        if not 1 <= n <= self.count:
            return None
        k, skip = divmod(n - 1, STRIDE)
        return self._marks[k], skip

    def mark_before(self, offset: int) -> tuple[int, int]:
        """(line number, offset) of the last mark at or before ``offset`` (a line start)."""
        k = bisect.bisect_right(self._marks, offset) - 1
        return k * STRIDE + 1, self._marks[k]


def skip_lines(fd: int, offset: int, skip: int) -> int:
    """The offset of the line ``skip`` lines after the one starting at ``offset``."""
    while skip:
        chunk = os.pread(fd, _CHUNK, offset)
        if not chunk:
            raise EOFError(f"{skip} line(s) short at byte {offset}")
        start = 0
        while skip:
            nl = chunk.find(b"\n", start)
            if nl < 0:
                break
            start = nl + 1
            skip -= 1
        offset += start if not skip else len(chunk)
    return offset


def count_lines(fd: int, start: int, end: int) -> int:
    """Newlines in bytes [start, end)."""
    n = 0
    while start < end:
        chunk = os.pread(fd, min(_CHUNK, end - start), start)
        if not chunk:
            break
        n += chunk.count(b"\n")
        start += len(chunk)
    return n
