"""The JSONL backend's files under the data root, its cross-process lock and line reads."""
from __future__ import annotations

import fcntl
import os

from server.ledger.records import REQUESTS_REF, RESULTS_REF

REQUESTS = REQUESTS_REF
RESULTS = RESULTS_REF
LOCK = "state/tickets/.ledger.lock"


class FileLock:
    """Exclusive flock for the span of one batch (or the start-up replay)."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd

    def __enter__(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)


def read_line(fd: int, offset: int) -> bytes:
    """The line starting at ``offset`` (without its newline); lines never move once written."""
    buf = b""
    while True:
        chunk = os.pread(fd, 65536, offset + len(buf))
        if not chunk:
            return buf
        buf += chunk
        nl = buf.find(b"\n")
        if nl >= 0:
            return buf[:nl]
