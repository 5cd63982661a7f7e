"""Reading the JSONL ledger's events in commit order, and waking watchers.

The order and the positions are those of ``commits``: batch after batch,
inside a batch its request lines, then its result lines. A revision token
is the position after an event plus a tag that ties it to this ledger (the
first request's id), so a token of another ledger is refused, not misread.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import re
import threading
from collections.abc import Callable

import orjson

from opsledger.server.errors import InvalidArgument
from opsledger.server.ledger.backend import LedgerEvent
from opsledger.server.ledger.jsonl import commits
from opsledger.server.ledger.jsonl.commits import Position

_TOKEN = re.compile(r"j1\.([0-9a-f]{1,16})\.([0-9a-f]{1,16})\.([0-9a-f]{12})")
_CHUNK = 1 << 16


def _tag(ledger_id: str, pos: Position) -> str:
    return hashlib.sha256(f"{ledger_id}/{pos[0]}/{pos[1]}".encode()).hexdigest()[:12]


def make_token(ledger_id: str, pos: Position) -> str:
    return f"j1.{pos[0]:x}.{pos[1]:x}.{_tag(ledger_id, pos)}"


def parse_token(token: str, ledger_id: str) -> Position:
    m = _TOKEN.fullmatch(token)
    if m is None:
        raise InvalidArgument.one("after", "is not a revision token (use the revision of an event)")
    pos = (int(m.group(1), 16), int(m.group(2), 16))
    # The start of a ledger is the same place whether or not it had a first ticket yet.
    tags = {_tag(ledger_id, pos), _tag("", pos)} if pos == (0, 0) else {_tag(ledger_id, pos)}
    if m.group(3) not in tags:
        raise InvalidArgument.one("after", "is a revision of another ledger")
    return pos


def _lines(fd: int, start: int, end: int, limit: int):
    """Up to ``limit`` (line, offset after it) between two line starts."""
    pos, pending, n = start, b"", 0
    while pos < end and n < limit:
        chunk = os.pread(fd, min(_CHUNK, end - pos), pos)
        if not chunk:
            return
        pos += len(chunk)
        data = pending + chunk
        at = pos - len(data)
        parts = data.split(b"\n")
        pending = parts.pop()
        for line in parts:
            at += len(line) + 1
            yield line, at
            n += 1
            if n >= limit:
                return


def _is_line_start(fd: int, offset: int) -> bool:
    return offset == 0 or os.pread(fd, 1, offset - 1) == b"\n"


class EventReader:
    """Events between revisions, read from the logs and the boundaries file.

    ``snapshot()`` gives (boundaries committed, the last of them, the open
    boundaries file they are in) consistently with what the store has made
    visible; ``type_of(request_id)`` is the
    ticket's type (result lines do not carry it)."""

    def __init__(self, req_fd: int, res_fd: int,
                 snapshot: Callable[[], tuple[int, Position, int]], type_of: Callable[[str], str]) -> None:
        self.req_fd, self.res_fd = req_fd, res_fd
        self.snapshot = snapshot
        self.type_of = type_of
        self._ledger_id = ""
        self._hint = 0

    def ledger_id(self) -> str:
        if not self._ledger_id:
            first = next(_lines(self.req_fd, 0, os.fstat(self.req_fd).st_size, 1), None)
            if first is not None:
                self._ledger_id = orjson.loads(first[0])["request_id"]
        return self._ledger_id

    def head(self) -> str:
        return make_token(self.ledger_id(), self.snapshot()[1])

    def after(self, token: str | None, limit: int) -> tuple[list[LedgerEvent], str]:
        count, last, fd = self.snapshot()
        ledger_id = self.ledger_id()
        pos = (0, 0) if token is None else parse_token(token, ledger_id)
        k = commits.first_after(fd, count, pos, self._hint)
        if k == count:
            if pos != last:
                raise InvalidArgument.one("after", "is not a revision of this ledger")
            return [], make_token(ledger_id, pos)
        start = commits.read_at(fd, k - 1) if k else (0, 0)
        end = commits.read_at(fd, k)
        in_requests = start[0] <= pos[0] <= end[0] and pos[1] == start[1]
        in_results = pos[0] == end[0] and start[1] <= pos[1] <= end[1]
        if not (in_requests or in_results) or not (
            _is_line_start(self.req_fd, pos[0]) and _is_line_start(self.res_fd, pos[1])
        ):
            raise InvalidArgument.one("after", "is not a revision of this ledger")
        events: list[LedgerEvent] = []
        while k < count and len(events) < limit:
            end = commits.read_at(fd, k)
            if pos[0] < end[0]:
                for line, at in _lines(self.req_fd, pos[0], end[0], limit - len(events)):
                    rec = orjson.loads(line)
                    pos = (at, pos[1])
                    events.append(LedgerEvent(make_token(ledger_id, pos), "SUBMITTED", rec["request_id"],
                                              rec["request_type"], rec["status"], rec))
                if pos[0] < end[0]:
                    break
            if pos[1] < end[1] and len(events) < limit:
                for line, at in _lines(self.res_fd, pos[1], end[1], limit - len(events)):
                    rec = orjson.loads(line)
                    pos = (pos[0], at)
                    events.append(LedgerEvent(make_token(ledger_id, pos), "TRANSITION", rec["request_id"],
                                              self.type_of(rec["request_id"]), rec["status"], rec))
            if pos == end:
                k += 1
        self._hint = k
        return events, make_token(ledger_id, pos)


class CommitSignal:
    """A version that moves after every commit (or every commit with a submit), and
    waiters on event loops."""

    def __init__(self) -> None:
        self.version = 0
        self._waiters: dict[asyncio.AbstractEventLoop, set[asyncio.Future]] = {}
        self._lock = threading.Lock()

    def bump(self) -> None:
        """Any thread: the version moved."""
        self.version += 1
        with self._lock:
            pending = [(loop, list(futs)) for loop, futs in self._waiters.items() if futs]
        for loop, futs in pending:
            try:
                loop.call_soon_threadsafe(_wake, futs)
            except RuntimeError:  # that loop is closed: nobody waits there any more
                pass

    async def wait(self, since: int, timeout: float, poll_s: float, changed_elsewhere: Callable[[], bool]) -> None:
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        with self._lock:  # armed before the check: no wake-up is missed
            self._waiters.setdefault(loop, set()).add(waiter)
        try:
            deadline = loop.time() + timeout
            while self.version == since and not waiter.done():
                left = deadline - loop.time()
                if left <= 0:
                    return
                await asyncio.wait({waiter}, timeout=min(left, poll_s))
                if changed_elsewhere():
                    return
        finally:
            with self._lock:
                mine = self._waiters[loop]
                mine.discard(waiter)
                if not mine:
                    del self._waiters[loop]


def _wake(waiters: list[asyncio.Future]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)
