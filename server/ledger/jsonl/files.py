"""The JSONL backend's files under the data root, its cross-process lock and line reads."""
from __future__ import annotations

import fcntl
import os

from opsledger.server.ledger.records import REQUESTS_REF, RESULTS_REF

REQUESTS = REQUESTS_REF
RESULTS = RESULTS_REF
LOCK = "state/tickets/.ledger.lock"


class FileLock:
    """Exclusive flock for the span of one batch (or the start-up replay)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __enter__(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)


_LINE_GUESS = 1024  # most lines are 200-600 bytes; a longer one is read on in doubling steps


def read_line(fd: int, offset: int) -> bytes:
    """The line starting at ``offset`` (without its newline); lines never move once written.

    Reads 1 KiB first, not a fixed large block: a 1,000-row board page reads
    2,000 lines, and 64 KiB reads made that copy 128 MB."""
    want = _LINE_GUESS
    buf = os.pread(fd, want, offset)
    while True:
        nl = buf.find(b"\n")
        if nl >= 0:
            return buf[:nl]
        if len(buf) < want:  # end of file
            return buf
        more = os.pread(fd, want, offset + len(buf))
        if not more:
            return buf
        buf += more
        want *= 2


_GAP = 4096  # lines closer than this are read in one pread with what lies between (bounded copying)


def read_lines(fd: int, offsets: list[int]) -> dict[int, bytes]:
    """The lines starting at each of ``offsets`` (a board page's rows): lines near each
    other are read together, one pread per run instead of one or more per line."""
    out: dict[int, bytes] = {}
    ordered = sorted(set(offsets))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] - ordered[j] <= _GAP:
            j += 1
        start = ordered[i]
        buf = os.pread(fd, ordered[j] - start + _LINE_GUESS, start)
        for offset in ordered[i:j + 1]:
            at = offset - start
            nl = buf.find(b"\n", at)
            out[offset] = buf[at:nl] if nl >= 0 else read_line(fd, offset)  # longer than the guess: on its own
        i = j + 1
    return out
