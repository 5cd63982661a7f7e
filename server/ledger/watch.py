"""WatchTickets: one reader of the ledger's events per server, many watchers.

The ``Feed`` reads new events from the backend once (``events_after`` from
its own head, woken by ``wait_for_commit``) and keeps the most recent
``RING`` of them, already converted to messages, in memory. Each watcher
follows the ring from its own revision; a watcher whose revision is not (or
no longer) in the ring, because it started in the past or read too slowly,
is served from the log again by the backend, ``CHUNK`` events at a time,
until it reaches the ring. So:

* memory is the ring plus one chunk per watcher catching up; a watcher that
  reads nothing holds one message in gRPC's flow-controlled send path and
  nothing else (it is never ended for being slow, and never skips);
* a watcher that goes away is cancelled: its task, its chunk and its place
  are released at once, and the feed stops when the last watcher is gone;
* an idle watcher is one suspended coroutine (its progress timer included).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from opsledger.server.ledger.backend import LedgerBackend, LedgerEvent

log = logging.getLogger("opsledger.watch")

RING = 2048  # recent events kept for live watchers
CHUNK = 256  # events a watcher takes per step (from the ring or from the log)
PROGRESS_EVERY_S = 10.0  # an idle or filtered-out watcher still hears its revision this often
FEED_IDLE_S = 1.0


class ShuttingDown(Exception):
    """The server is stopping; ``revision`` is where the watcher can resume."""

    def __init__(self, revision: str) -> None:
        super().__init__(revision)
        self.revision = revision


class Feed:
    """Recent events of one backend, shared by every watcher of one event loop."""

    def __init__(self, store: LedgerBackend, convert: Callable[[LedgerEvent], object]) -> None:
        self.store = store
        self.convert = convert
        self._events: list[tuple[LedgerEvent, object]] = []
        self._before: list[str] = []  # the revision just before each kept event
        self._base = 0  # sequence number of _events[0]
        self._seq: dict[str, int] = {}  # revision -> sequence number of the event after it
        self._head: str | None = None
        self._changed: asyncio.Future | None = None
        self._task: asyncio.Task | None = None
        self.watchers = 0
        self.closing = False

    # -- watchers ------------------------------------------------------------------
    def attach(self) -> None:
        self.watchers += 1
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def detach(self) -> None:
        self.watchers -= 1
        if self.watchers == 0 and self._task is not None:
            self._task.cancel()  # nobody listens: no reads, no memory
            self._task = None
            self._events, self._before, self._seq, self._head = [], [], {}, None

    def changed(self) -> asyncio.Future:
        if self._changed is None or self._changed.done():
            self._changed = asyncio.get_running_loop().create_future()
        return self._changed

    def take(self, revision: str, limit: int) -> list[tuple[LedgerEvent, object]] | None:
        """Events after ``revision`` from the ring, or None when it is not there."""
        seq = self._seq.get(revision)
        if seq is None:
            return None
        at = seq - self._base
        return self._events[at:at + limit]

    def close(self) -> None:
        self.closing = True
        self._notify()

    # -- the one reader ------------------------------------------------------------
    def _notify(self) -> None:
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)

    async def _run(self) -> None:
        store = self.store
        while True:
            try:
                if self._head is None:
                    self._head = await asyncio.to_thread(store.head_revision)
                    self._seq = {self._head: self._base + len(self._events)}
                    self._notify()
                version = store.commit_version()  # read before the read: no commit is missed
                events, head = await asyncio.to_thread(store.events_after, self._head, CHUNK * 4)
                if events:
                    self._append(events, head)
                    self._notify()
                if len(events) < CHUNK * 4:
                    await store.wait_for_commit(version, FEED_IDLE_S)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - watchers keep their place; the next round retries
                log.exception("reading the ledger's events failed")
                await asyncio.sleep(FEED_IDLE_S)

    def _append(self, events: list[LedgerEvent], head: str) -> None:
        for event in events:
            self._before.append(self._head)  # type: ignore[arg-type]
            self._events.append((event, self.convert(event)))
            self._seq[event.revision] = self._base + len(self._events)
            self._head = event.revision
        self._head = head
        extra = len(self._events) - RING
        if extra > 0:
            for revision in self._before[:extra]:
                self._seq.pop(revision, None)
            del self._events[:extra]
            del self._before[:extra]
            self._base += extra


class Watcher:
    """One watcher's place. ``batches()`` yields lists of (event, message) that
    pass the filter, or None for a progress beat (nothing sent for
    ``PROGRESS_EVERY_S``); ``revision`` is always the last position passed."""

    def __init__(self, feed: Feed, store: LedgerBackend, revision: str | None,
                 keep: Callable[[LedgerEvent], bool]) -> None:
        self.feed, self.store, self.keep = feed, store, keep
        self.revision = revision  # None: from the ledger's beginning

    async def batches(self):
        feed = self.feed
        last_sent = time.monotonic()
        while True:
            if feed.closing:
                raise ShuttingDown(self.revision or "")
            changed = feed.changed()  # taken before looking: no wake-up is missed
            taken = feed.take(self.revision, CHUNK) if self.revision is not None else None
            if taken is None:  # not in the ring (a past revision, or read too slowly): the log
                events, head = await asyncio.to_thread(self.store.events_after, self.revision, CHUNK)
                taken = [(e, None) for e in events]
                if not events:
                    self.revision = head
            if taken:
                self.revision = taken[-1][0].revision
                kept = [(e, m if m is not None else feed.convert(e)) for e, m in taken if self.keep(e)]
                if kept:
                    last_sent = time.monotonic()
                    yield kept
                elif time.monotonic() - last_sent >= PROGRESS_EVERY_S:
                    last_sent = time.monotonic()
                    yield None
                continue
            left = last_sent + PROGRESS_EVERY_S - time.monotonic()
            if left > 0:
                await asyncio.wait({changed}, timeout=left)
            if time.monotonic() - last_sent >= PROGRESS_EVERY_S:
                last_sent = time.monotonic()
                yield None
