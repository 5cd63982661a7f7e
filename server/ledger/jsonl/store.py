"""The durable ledger: two append-only JSONL files, one writer, group commit.

Shell around the pure parts (decide, records, index):

* one writer thread takes every command waiting in its queue, decides each
  (``opsledger.server.ledger.decide``, against the index and the batch so far),
  appends all accepted lines with one write and
  one flush (fdatasync) per file, and only then answers the callers (group
  commit);
* every batch runs under an exclusive ``flock`` on the root's lock file and
  first reads what other processes appended (catch-up), so several
  processes on one root never both win a transition or interleave lines;
* start-up replays both logs; a torn last line is moved aside to
  ``<file>.torn-<stamp>`` and cut off; a corrupt line elsewhere stops
  start-up naming file, line and reason;
* after a failed write or fsync the store refuses every further write until
  restarted (Unavailable), and tells its owner (health NOT_SERVING).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import queue
import threading
import time
import zlib
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

import orjson

from opsledger.server.common.atomic import atomic_replace, create_new, fsync_dir, write_all
from opsledger.server.common.clock import Clock, epoch_seconds, file_stamp
from opsledger.server.errors import OpsledgerError, OutcomeUnknown, StartupRefused, Unavailable
from opsledger.server.ledger import records
from opsledger.server.ledger.backend import Anomaly, BatchObserver, Claimed, ClaimNext, Health, StaleTicket, TicketView
from opsledger.server.ledger.decide import Batch, Refusal, decide
from opsledger.server.ledger.jsonl import checkpoint, commits, replay
from opsledger.server.ledger.jsonl.checkpoint import CHECKPOINT, BadCheckpoint, LostLog
from opsledger.server.ledger.jsonl.events import CommitSignal, EventReader
from opsledger.server.ledger.jsonl.files import LOCK, REQUESTS, RESULTS, FileLock, read_line, read_lines
from opsledger.server.ledger.jsonl.index import Entry, LedgerIndex, export, restore
from opsledger.server.ledger.jsonl.lines import SparseLines, count_lines, skip_lines

log = logging.getLogger("opsledger.store")

BATCH_MAX = 1024
# Tickets submitted by another process on the same root are noticed by a
# size check of the logs at this interval (a stat, no claim attempt unless
# they grew); submissions in this process wake waiters at once.
OTHER_PROCESS_CHECK_S = 1.0
# Watchers notice another process's commits by the same size check, more often.
WATCH_OTHER_PROCESS_CHECK_S = 0.2
_READ_CHUNK = 1 << 20


class CorruptLog(StartupRefused):
    """A line in the middle of a log is not a record: start-up stops."""

    fix = ("a corrupt line in the middle of a log stops start-up (nothing is guessed): run "
           "`opsledger fsck --root DATA_ROOT` to list every problem, back the file up, then repair or remove "
           "that line")

    def __init__(self, path: Path, line_no: int, reason: str) -> None:
        self.path, self.line_no, self.reason = path, line_no, reason
        super().__init__(f"{path}:{line_no}: {reason}")


class _NotTakenBack(Exception):
    """A failed append whose bytes could not be cut off again."""

    def __init__(self, cause: BaseException, cut_error: OSError) -> None:
        self.cause, self.cut_error = cause, cut_error
        super().__init__(f"{cause}; cutting back failed: {cut_error}")


class TornTailStuck(StartupRefused):
    """A torn last line that cannot be cut off: the file refuses truncation."""

    def __init__(self, path: Path, reason: str, exc: OSError) -> None:
        self.path = path
        self.fix = (f"a log that is append-only (chattr +a) or immutable cannot lose its torn tail: clear the flag "
                    f"(chattr -a {path}), start once so the tail is moved aside to {path.name}.torn-*, then set "
                    "it again")
        super().__init__(f"{path}: {reason}, and the file cannot be cut ({exc.strerror})")


class LogReplaced(Exception):
    """A log (or the lock file) is no longer the file the store has open:
    renamed, deleted or replaced under a running server. Appending on would
    write into a file nobody reads after a restart."""


@dataclass
class Sync:
    """Only read what other processes appended."""


_STOP = object()


class JsonlLedger:
    """The ``LedgerBackend`` on two JSONL logs under ``root``."""

    name = "jsonl"

    def __init__(
        self,
        root: Path,
        clock: Clock | None = None,
        fsync: bool = True,
        on_failure: Callable[[BaseException], None] | None = None,
        checkpoint_interval: float = 0.0,
        accept_log_loss: bool = False,
        scrub: bool = True,
        scrub_when_told: bool = False,
    ) -> None:
        self.root = Path(root)
        self._where = str(self.root.resolve())  # for health(), read on the event loop: no path walk per look
        self.clock = clock or Clock()
        self.fsync = fsync
        self.on_failure = on_failure
        self.requests_path = self.root / REQUESTS
        self.results_path = self.root / RESULTS
        self.lock_path = self.root / LOCK
        self.commits_path = self.root / commits.COMMITS
        # Commit boundaries (see commits.py): how many are durable-and-visible, the last one.
        self._commits_count = 0
        self._commits_last: commits.Position = (0, 0)
        self._commits_fd: int | None = None
        self._retired_fds: list[int] = []  # boundaries files replaced under us; readers may still hold them
        self._events: EventReader | None = None
        self._committed = CommitSignal()
        self.index = LedgerIndex()
        self.lock = threading.Lock()  # guards the index between writer and readers
        self._batch_lock = threading.Lock()  # one batch at a time (writer thread or a leading caller)
        self._anomalies: list[Anomaly] = []
        self.failed: BaseException | None = None
        self._observers: list[BatchObserver] = []
        # ConsumeNext waiters: woken after each batch with a submit, and by every
        # catch-up that takes in another process's submits.
        self._opened = CommitSignal()
        self._sizes = {self.requests_path: 0, self.results_path: 0}
        # The sizes this process's append in flight will reach (empty when none): between
        # the write and the index update, the logs are longer than ``_sizes`` by our own lines.
        self._writing: dict[Path, int] = {}
        self._line_numbers = {self.requests_path: 0, self.results_path: 0}
        # "line N" of the results log is evidence an auditor can cite; a sparse
        # index of line starts answers it (and a result's line from its offset).
        self._result_lines = SparseLines()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._fds: dict[Path, int] = {}
        # The store's I/O boundary for appends; fault-injection tests replace these.
        # fdatasync flushes the data and the file size (what an append needs),
        # not the mtime: the same durability as fsync for a log, and cheaper.
        self.write = write_all
        self.sync = os.fdatasync
        self._lock_fd: int | None = None
        # The index checkpoint (see checkpoint.py): one CRC-32 per log line read
        # or written, what a checkpoint stores and the scrub checks against.
        self.checkpoint_path = self.root / CHECKPOINT
        self.checkpoint_interval = checkpoint_interval
        self.accept_log_loss = accept_log_loss
        self._crcs = {self.requests_path: array("I"), self.results_path: array("I")}
        self._checkpointed: dict | None = None  # the sizes the last checkpoint written or loaded covers
        self.loaded_from: dict | None = None  # the header of the checkpoint start-up used
        self._scrub_wanted = scrub
        # A server starts the scrub only once it serves (``start_scrub``): until then the
        # scrub's reads and checks would compete with start-up for the interpreter.
        self._scrub_go = threading.Event()
        if not scrub_when_told:
            self._scrub_go.set()
        self.scrub_state = {"state": "none", "bytes_total": 0, "bytes_done": 0, "finding": None}
        self._stopping = threading.Event()
        self._background: list[threading.Thread] = []

    # -- life cycle ------------------------------------------------------------
    def open(self) -> JsonlLedger:
        """Replay both logs (torn tails cut, corrupt middles fatal), start the writer."""
        folder = self.requests_path.parent
        folder.mkdir(parents=True, exist_ok=True)
        for path in (self.requests_path, self.results_path):
            existed = path.exists()
            self._fds[path] = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            if not existed:
                fsync_dir(folder)
        self._lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        self._commits_fd = os.open(self.commits_path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        self._events = EventReader(self._fds[self.requests_path], self._fds[self.results_path],
                                   self._commits_snapshot, self._type_of)
        loss_accepted = False
        try:
            with self._flock():
                try:
                    self._load_checkpoint()
                except LostLog as exc:
                    if not self.accept_log_loss:
                        if exc.rewritten:
                            self._catch_up()  # a changed line that is no record stops start-up here, with its reason
                        raise
                    log.warning("%s; --accept-log-loss: the checkpoint is set aside and the logs are "
                                "replayed in full as they are", exc)
                    self._set_checkpoint_aside("log-loss-accepted")
                    loss_accepted = True
                self._catch_up(startup=True)
        except BaseException:
            self.close(checkpoint=False)  # a start-up that stops leaves no file open
            raise
        self._thread = threading.Thread(target=self._writer, name="ledger-writer", daemon=True)
        self._thread.start()
        if loss_accepted:
            self.write_checkpoint()  # the loss is now the recorded state: the next start does not stop again
        if self.loaded_from is not None and self._scrub_wanted:
            self._start_background(self._scrub, "ledger-scrub")
        if self.checkpoint_interval > 0:
            self._start_background(self._checkpoint_every, "ledger-checkpoint")
        return self

    def _start_background(self, target, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        self._background.append(t)
        t.start()

    def close(self, checkpoint: bool = True) -> None:
        """Finish every queued command, stop the writer, write a checkpoint
        (when anything changed since the last one), close files."""
        self._stopping.set()
        self._scrub_go.set()
        for t in self._background:
            t.join()
        self._background.clear()
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
            if checkpoint and self.failed is None and self._checkpointed != self._covered():
                try:
                    self.write_checkpoint()
                except OSError as exc:  # the logs are intact; the next start replays more
                    log.warning("index checkpoint not written at stop: %s", exc)
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        if self._commits_fd is not None:
            os.close(self._commits_fd)
            self._commits_fd = None
        for fd in self._retired_fds:
            os.close(fd)
        self._retired_fds.clear()

    # -- calls ------------------------------------------------------------------
    def execute(self, command) -> concurrent.futures.Future:
        fut: concurrent.futures.Future = concurrent.futures.Future()
        if self.failed is not None:
            fut.set_exception(Unavailable(f"store is read-only until restarted: {self.failed}"))
            return fut
        self._queue.put((command, fut))
        return fut

    async def run(self, command):
        return await asyncio.wrap_future(self.execute(command))

    def call(self, command, timeout: float | None = None):
        """Blocking call. When no batch is running, the calling thread runs it
        itself with whatever else is queued (leader/follower): two thread
        hand-offs fewer per call. Otherwise it queues and waits like anyone."""
        if self.failed is None and self._batch_lock.acquire(blocking=False):
            fut: concurrent.futures.Future = concurrent.futures.Future()
            try:
                batch, stop = self._take_batch((command, fut))
                if stop:
                    self._queue.put(_STOP)  # the stop belongs to the writer thread
                self._run_batch(batch)
            finally:
                self._batch_lock.release()
            return fut.result(timeout)
        return self.execute(command).result(timeout)

    def changed_elsewhere(self) -> bool:
        """True when a log grew beyond what this process has read (another writer);
        this process's own append in flight is not a change.

        No lock (it runs on the event loop): the sizes are looked at first, then the
        append's target, then ``_sizes``; ``_append`` sets the target before writing and
        clears it only after ``_sizes`` holds it, so one of the two always matches."""
        try:
            now = [(p, os.stat(p).st_size) for p in self._sizes]
        except OSError:
            return False
        writing = self._writing
        return any(size != writing.get(p) and size != self._sizes[p] for p, size in now)

    def _refresh(self) -> None:
        """Before a read: take in what other processes appended, if anything."""
        if self.failed is None and self.changed_elsewhere():
            try:
                self.call(Sync())
            except OpsledgerError:
                # The batch the catch-up joined failed (Unavailable, or OutcomeUnknown for
                # another caller's write): the store is read-only now, and reads answer
                # from what it holds; that outcome is the writer's to hear, not the reader's.
                pass

    # -- records are read back from the logs by offset (the index keeps none) --
    def _claimed(self, result: dict, work: Batch) -> Claimed:
        """A claim's answer with its ticket's request (submitted in this batch, or read by offset)."""
        rid = result["request_id"]
        entry = self.index.get(rid)
        return Claimed(result, self.request_of(entry) if entry is not None else work.submitted(rid))  # type: ignore[arg-type]

    def request_of(self, entry: Entry) -> dict:
        return orjson.loads(read_line(self._fds[self.requests_path], entry.request_offset))

    def last_result_of(self, entry: Entry) -> dict | None:
        if entry.last_offset is None:
            return None
        return orjson.loads(read_line(self._fds[self.results_path], entry.last_offset))

    # -- queries (LedgerBackend) ---------------------------------------------------
    # Blocking reads (run off the event loop). The index is consulted under
    # the lock; lines are read after it, by offset: a line once written never
    # moves, so the writer is not held up by the reads.
    def page(self, statuses: tuple[str, ...], types: tuple[str, ...], size: int,
             before: int | None) -> tuple[list[dict], int | None, int]:
        self._refresh()
        with self.lock:
            where, cursor, total = self.index.page(statuses, types, size, before)
        requests = read_lines(self._fds[self.requests_path], [r for r, _last in where])
        results = read_lines(self._fds[self.results_path], [last for _r, last in where if last is not None])
        rows = [
            records.board_row(orjson.loads(requests[r]), orjson.loads(results[last]) if last is not None else None)
            for r, last in where
        ]
        return rows, cursor, total

    def ticket(self, request_id: str) -> TicketView | None:
        self._refresh()
        return self._ticket(request_id)

    def _ticket(self, request_id: str) -> TicketView | None:
        with self.lock:
            entry = self.index.get(request_id)
            if entry is None:
                return None
            request_offset, result_offsets = entry.request_offset, entry.result_offsets()
            marks = [self._result_lines.mark_before(o) for o in result_offsets]
        res_fd = self._fds[self.results_path]
        lines = [first + count_lines(res_fd, mark, o) for (first, mark), o in zip(marks, result_offsets)]
        request = orjson.loads(read_line(self._fds[self.requests_path], request_offset))
        results = [orjson.loads(read_line(res_fd, offset)) for offset in result_offsets]
        return TicketView(records.board_row(request, results[-1] if results else None), request, results, lines)

    def result_line(self, n: int) -> bytes | None:
        self._refresh()
        with self.lock:
            where = self._result_lines.locate(n)
        if where is None:
            return None
        fd = self._fds[self.results_path]
        return read_line(fd, skip_lines(fd, *where))

    def line_counts(self) -> tuple[int, int]:
        self._refresh()
        with self.lock:
            return self._line_numbers[self.requests_path], self._line_numbers[self.results_path]

    def counts(self) -> dict[str, int]:
        self._refresh()
        with self.lock:
            return self.index.counts()

    def finished_since(self, since: int) -> dict[str, int]:
        self._refresh()
        with self.lock:
            return self.index.finished_since(since)

    def stale_in_progress(self, before: int, limit: int) -> tuple[list[StaleTicket], int]:
        self._refresh()
        with self.lock:
            total = self.index.count_in_progress_before(before)
            chosen = []  # type: ignore[var-annotated]
            for entry in self.index.in_progress_before(before):
                if len(chosen) >= limit:
                    break
                chosen.append((entry.request_id, entry.request_type, entry.last_offset))
        res_fd = self._fds[self.results_path]
        return [StaleTicket(rid, rtype, orjson.loads(read_line(res_fd, last))["processed_at"])  # type: ignore[arg-type]
                for rid, rtype, last in chosen], total

    def open_version(self) -> int:
        return self._opened.version

    async def wait_for_open(self, types: tuple[str, ...], timeout: float, since: int) -> None:
        await self._opened.wait(since, timeout, OTHER_PROCESS_CHECK_S, self.changed_elsewhere)

    # -- events (LedgerBackend; the reading is events.py) ------------------------------
    def head_revision(self) -> str:
        self._refresh()
        return self._events.head()  # type: ignore[union-attr]

    def events_after(self, after: str | None, limit: int):
        self._refresh()
        return self._events.after(after, limit)  # type: ignore[union-attr]

    def commit_version(self) -> int:
        return self._committed.version

    async def wait_for_commit(self, since: int, timeout: float) -> None:
        await self._committed.wait(since, timeout, WATCH_OTHER_PROCESS_CHECK_S, self.changed_elsewhere)

    def _commits_snapshot(self) -> tuple[int, commits.Position, int]:
        with self.lock:
            assert self._commits_fd is not None  # open() made it before any reader
            return self._commits_count, self._commits_last, self._commits_fd

    def _type_of(self, request_id: str) -> str:
        with self.lock:
            entry = self.index.get(request_id)
        return entry.request_type if entry is not None else ""

    def _sync_commits(self) -> None:
        """Under the root's lock, after a catch-up: take in other processes'
        boundaries; close a span of the logs no boundary covers (see commits.py)."""
        try:
            self._follow_commits_path()
        except OSError as exc:  # derived data: keep the file held; the next catch-up tries again
            log.warning("could not follow %s: %s", commits.COMMITS, exc)
        fd = self._commits_fd
        sizes = (self._sizes[self.requests_path], self._sizes[self.results_path])
        count, last = commits.valid_prefix(fd, self._commits_count, self._commits_last, sizes)  # type: ignore[arg-type]
        if os.fstat(fd).st_size != count * commits.SIZE:  # type: ignore[arg-type]
            log.warning("%s: records after boundary %d do not match the logs; rewritten from there",
                        commits.COMMITS, count)
            os.ftruncate(fd, count * commits.SIZE)  # type: ignore[arg-type]
        if last != sizes:
            os.write(fd, commits.encode(sizes))  # type: ignore[arg-type]
            count, last = count + 1, sizes
        if count != self._commits_count:
            with self.lock:
                self._commits_count, self._commits_last = count, last
            self._committed.bump()

    def _follow_commits_path(self) -> None:
        """Under the root's lock: the boundaries file at the path is the one every
        process (and the next start) reads. Deleted or replaced under a running
        server, it is derived data, so the store goes on serving: a missing file, or
        one holding only a prefix of what this process knows, is put back from what
        this process holds; a file with other boundaries was written by a process
        started after the change, whose order watchers may already have seen, so
        this process takes it up too (one order for the root)."""
        assert self._commits_fd is not None
        held = os.fstat(self._commits_fd)
        try:
            now = os.stat(self.commits_path)
        except FileNotFoundError:
            now = None
        if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
            return
        ours = os.pread(self._commits_fd, self._commits_count * commits.SIZE, 0)
        if now is not None:
            fd = os.open(self.commits_path, os.O_RDWR | os.O_APPEND)
            sizes = (self._sizes[self.requests_path], self._sizes[self.results_path])
            valid, _last = commits.valid_prefix(fd, 0, (0, 0), sizes)
            theirs = os.pread(fd, valid * commits.SIZE, 0)
            if not ours.startswith(theirs):
                log.warning("%s was replaced while the server ran by one with other commit boundaries "
                            "(another process started after the change); this process follows it",
                            commits.COMMITS)
                self._swap_commits_fd(fd, 0, (0, 0))  # its records are checked from the first
                return
            os.close(fd)
        log.warning("%s was %s while the server ran; put back with the %d boundaries this process holds",
                    commits.COMMITS, "deleted" if now is None else "replaced", self._commits_count)
        atomic_replace(self.commits_path, ours)
        self._swap_commits_fd(os.open(self.commits_path, os.O_RDWR | os.O_APPEND),
                              self._commits_count, self._commits_last)

    def _swap_commits_fd(self, fd: int, count: int, last: commits.Position) -> None:
        with self.lock:
            if self._commits_fd is not None:
                self._retired_fds.append(self._commits_fd)
            self._commits_fd, self._commits_count, self._commits_last = fd, count, last

    def _add_commit(self) -> None:
        """Under the root's lock, once a batch is durable: its boundary."""
        sizes = (self._sizes[self.requests_path], self._sizes[self.results_path])
        try:
            os.write(self._commits_fd, commits.encode(sizes))  # type: ignore[arg-type]
        except OSError as exc:  # derived data: the next catch-up writes a boundary instead
            log.warning("could not record a commit boundary: %s", exc)
            return
        with self.lock:
            self._commits_count, self._commits_last = self._commits_count + 1, sizes
        self._committed.bump()

    def lines(self) -> tuple[list[bytes], list[bytes]]:
        self._refresh()
        with self.lock:
            sizes = (self._sizes[self.requests_path], self._sizes[self.results_path])
        return tuple(  # type: ignore[return-value]
            os.pread(self._fds[path], size, 0).splitlines() if size else []
            for path, size in zip((self.requests_path, self.results_path), sizes)
        )

    def on_batch(self, observer: BatchObserver) -> None:
        self._observers.append(observer)

    def health(self) -> Health:
        failed = self.failed
        return Health(self.name, self._where, failed is None,
                      None if failed is None else f"read-only until restarted: {failed}")

    def anomalies(self) -> list[Anomaly]:
        return list(self._anomalies)

    # -- index checkpoint ---------------------------------------------------------
    def _covered(self) -> dict:
        return {p.name: n for p, n in self._sizes.items()}

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _load_checkpoint(self) -> None:
        """Start from the checkpoint when it is valid and its logs are intact
        (then only the tails are replayed); a bad one is ignored with a warning."""
        try:
            header, arrays = checkpoint.read(self.checkpoint_path)
            fds = {self._rel(p): fd for p, fd in self._fds.items()}
            if set(header["logs"]) != set(fds):
                raise BadCheckpoint(f"covers {sorted(header['logs'])}, not these logs")
            crcs = {p: arrays[f"crc.{self._rel(p)}"] for p in self._fds}
            notes = checkpoint.check_logs(header, fds, {self._rel(p): c for p, c in crcs.items()})  # LostLog: stop
            index = restore(header["index"], arrays)
            for p in self._fds:
                if len(crcs[p]) != header["logs"][self._rel(p)]["lines"]:
                    raise BadCheckpoint(f"line checksums of {self._rel(p)} do not match its line count")
            numbered = SparseLines.restore(arrays["result_line_marks"],
                                           header["logs"][self._rel(self.results_path)]["lines"])
        except BadCheckpoint as exc:
            level = log.debug if str(exc) == "none written yet" else log.warning
            level("index checkpoint not used (%s): replaying the logs in full", exc)
            return
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("index checkpoint not used (inconsistent: %s): replaying the logs in full", exc)
            return
        for note in notes:
            log.warning("index checkpoint: %s", note)
        self.index = index
        self._crcs = crcs
        self._result_lines = numbered
        for p in self._fds:
            mark = header["logs"][self._rel(p)]
            self._sizes[p] = mark["size"]
            self._line_numbers[p] = mark["lines"]
        self._anomalies = [Anomaly(**a) for a in header["anomalies"]]
        self.loaded_from = header
        self._checkpointed = self._covered()
        log.info("index checkpoint of %s loaded: %d tickets; replaying only what came after it",
                 header["created_at"], index.request_count)

    def write_checkpoint(self) -> dict:
        """Write a checkpoint of the index now; returns its header's log marks.

        The cut is consistent and brief: with no batch running, the index
        columns are copied (memcpy) under the lock; encoding and the atomic
        write happen after, while writers go on."""
        with self._batch_lock:
            if self.failed is not None:
                raise Unavailable(f"store is read-only, no checkpoint written: {self.failed}")
            with self.lock:
                snap = self.index.snapshot()
                sizes = dict(self._sizes)
                lines = dict(self._line_numbers)
                crcs = {p: array("I", c) for p, c in self._crcs.items()}
                line_marks = self._result_lines.export()
                anomalies = [vars(a) for a in self._anomalies]
                marks = {self._rel(p): checkpoint.mark(fd, sizes[p], lines[p]) for p, fd in self._fds.items()}
        meta, arrays = export(snap)
        for p, c in crcs.items():
            arrays[f"crc.{self._rel(p)}"] = c
        arrays["result_line_marks"] = line_marks
        data = checkpoint.encode(marks, meta, arrays, anomalies, self.clock.now_iso())
        atomic_replace(self.checkpoint_path, data)
        self._checkpointed = {p.name: n for p, n in sizes.items()}
        log.info("index checkpoint written: %d tickets, %s", snap["request_count"],
                 ", ".join(f"{rel} {m.lines} lines / {m.size} bytes" for rel, m in marks.items()))
        return {rel: vars(m) for rel, m in marks.items()}

    def _set_checkpoint_aside(self, why: str) -> None:
        try:
            os.replace(self.checkpoint_path,
                       self.checkpoint_path.with_name(f"{self.checkpoint_path.name}.{why}-{file_stamp(self.clock.now())}"))
        except FileNotFoundError:
            pass

    def _checkpoint_every(self) -> None:
        _lower_priority()
        while not self._stopping.wait(self.checkpoint_interval):
            if self.failed is not None:
                return
            if self._checkpointed != self._covered():
                try:
                    self.write_checkpoint()
                except Exception as exc:  # noqa: BLE001 - the logs stay the truth; retried next round
                    log.warning("periodic index checkpoint failed: %s", exc)

    # -- scrub: the covered prefix, verified in the background --------------------
    def _scrub(self) -> None:
        """Re-read what the loaded checkpoint let start-up skip and compare each
        line with the CRC-32 recorded when it was indexed. A mismatch is a
        corrupt log: read-only, health NOT_SERVING, the file and line named."""
        _lower_priority()
        self._scrub_go.wait()
        if self._stopping.is_set():
            self.scrub_state["state"] = "stopped"
            return
        header = self.loaded_from
        plan = [(p, header["logs"][self._rel(p)]) for p in (self.requests_path, self.results_path)]  # type: ignore[index]
        total = sum(m["size"] for _p, m in plan)
        state = self.scrub_state
        state.update(state="running", bytes_total=total, bytes_done=0)
        log.info("scrub of the checkpointed prefix started: %d bytes", total)
        started, next_report = time.monotonic(), 0.25
        for path, mark in plan:
            fd, crcs, rel = self._fds[path], self._crcs[path], self._rel(path)
            pos, line_no, pending = 0, 0, b""
            while pos < mark["size"]:
                if self._stopping.is_set():
                    state["state"] = "stopped"
                    return
                chunk = os.pread(fd, min(_READ_CHUNK, mark["size"] - pos), pos)
                if not chunk:
                    break
                pos += len(chunk)
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()
                for line in lines:
                    if line_no >= mark["lines"] or zlib.crc32(line) != crcs[line_no]:
                        return self._scrub_found(rel, line_no + 1)
                    line_no += 1
                state["bytes_done"] += len(chunk)  # type: ignore[operator]
                if state["bytes_done"] >= next_report * total:
                    log.info("scrub: %d%% of %d bytes verified", 100 * state["bytes_done"] // max(total, 1), total)  # type: ignore[operator]
                    next_report += 0.25
                time.sleep(0.002)  # low priority: leave the interpreter to the calls between chunks
            if pending or line_no != mark["lines"]:
                return self._scrub_found(rel, line_no + 1)
        state["state"] = "done"
        log.info("scrub done: %d bytes of the checkpointed prefix verified in %.1f s",
                 total, time.monotonic() - started)

    def _scrub_found(self, rel: str, line_no: int) -> None:
        finding = (f"{rel}:{line_no}: this line is not what the index checkpoint was built from "
                   "(the log changed under it); run `opsledger fsck`")
        self.scrub_state.update(state="failed", finding=finding)
        # Failed first: a periodic checkpoint written between the two would cover the damage.
        self._fail(CorruptLog(self.root / rel, line_no, "changed after it was indexed (found by the scrub)"))
        self._set_checkpoint_aside("scrub-mismatch")  # the next start replays (and checks) every line

    def start_scrub(self) -> None:
        """Let the scrub of a checkpoint start's covered prefix begin (with
        ``scrub_when_told``; otherwise it begins when ``open`` returns)."""
        self._scrub_go.set()

    def scrub_progress(self) -> dict:
        return dict(self.scrub_state)

    # -- writer -----------------------------------------------------------------
    def _take_batch(self, first) -> tuple[list, bool]:
        """``first`` and whatever else is queued (group commit); True when a stop was met."""
        batch = [first] if first is not None else []
        while len(batch) < BATCH_MAX:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
        return batch, False

    def _writer(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            with self._batch_lock:
                batch, stop = self._take_batch(item)
                self._run_batch(batch)
            if stop:
                return

    def _run_batch(self, batch: list) -> None:
        # A caller that gave up (cancelled RPC) before its turn gets nothing done.
        batch = [(cmd, fut) for cmd, fut in batch if fut.set_running_or_notify_cancel()]
        if not batch:
            return
        if self.failed is not None:
            for _cmd, fut in batch:
                fut.set_exception(Unavailable(f"store is read-only until restarted: {self.failed}"))
            return
        answers: list[tuple[concurrent.futures.Future, object, bool]] = []
        try:
            with self._flock():
                self._check_identity()
                self._catch_up()
                work = Batch()
                view = _IndexView(self)
                now = self.clock.now_iso()
                for cmd, fut in batch:
                    if isinstance(cmd, Sync):
                        answers.append((fut, None, False))
                        continue
                    try:
                        outcome = decide(cmd, view, work, now)
                    except Exception as exc:  # noqa: BLE001 - reading a line failed: this caller only
                        answers.append((fut, exc, True))
                        continue
                    if isinstance(outcome, Refusal):  # nothing written for it
                        answers.append((fut, outcome.error, True))
                    elif isinstance(cmd, ClaimNext) and outcome.answer is not None:
                        answers.append((fut, self._claimed(outcome.answer, work), False))  # type: ignore[arg-type]
                    else:
                        answers.append((fut, outcome.answer, False))
                self._append(work)
        except BaseException as exc:
            self._fail(exc)
            for _cmd, fut in batch:
                if not fut.done():
                    if isinstance(exc, _NotTakenBack):
                        # UNAVAILABLE would invite a retry of a write that may be on disk.
                        fut.set_exception(OutcomeUnknown(
                            f"store could not write ({exc.cause}) nor take back what it wrote "
                            f"({exc.cut_error}): the call may be recorded; read the ticket before repeating it"))
                    else:
                        fut.set_exception(Unavailable(f"store could not write: {exc}"))
            return
        for fut, value, is_error in answers:
            if is_error:
                fut.set_exception(value)  # type: ignore[arg-type]
            else:
                fut.set_result(value)
        if work.requests:
            self._opened.bump()

    def _check_identity(self) -> None:
        """Under the lock, before a batch: every path still names the file we hold open."""
        for path, fd in ((self.requests_path, self._fds[self.requests_path]),
                         (self.results_path, self._fds[self.results_path]), (self.lock_path, self._lock_fd)):
            held = os.fstat(fd)  # type: ignore[arg-type]
            rel = path.relative_to(self.root).as_posix()
            try:
                now = os.stat(path)
            except FileNotFoundError:
                raise LogReplaced(
                    f"{rel} was renamed or deleted while the server ran (the open file, inode {held.st_ino}, "
                    f"has {held.st_nlink} link(s) left); nothing more is appended to it") from None
            if (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
                raise LogReplaced(
                    f"{rel} was replaced while the server ran: the open file is inode {held.st_ino} "
                    f"({held.st_nlink} link(s)), the path now names inode {now.st_ino}; nothing more is appended")

    def _fail(self, exc: BaseException) -> None:
        if self.failed is None:
            self.failed = exc
            log.error("ledger store turned read-only: %s", exc)
            if self.on_failure is not None:
                self.on_failure(exc)

    # -- durable append -----------------------------------------------------------
    def _append(self, work: Batch) -> None:
        if not work:
            return
        request_lines = [records.encode(r) for r in work.requests]
        result_lines = [records.encode(r) for r in work.results]
        started = time.perf_counter()
        req_at = self._sizes[self.requests_path]
        res_at = self._sizes[self.results_path]
        with self.lock:
            self._writing = {self.requests_path: req_at + sum(map(len, request_lines)),
                             self.results_path: res_at + sum(map(len, result_lines))}
        try:
            if request_lines:
                self.write(self._fds[self.requests_path], b"".join(request_lines))
            if result_lines:
                self.write(self._fds[self.results_path], b"".join(result_lines))
            if self.fsync:
                if request_lines:
                    self.sync(self._fds[self.requests_path])
                if result_lines:
                    self.sync(self._fds[self.results_path])
        except BaseException as exc:
            # Leave no unacknowledged line behind; when that fails, say so
            # (the callers must not be told that nothing happened).
            for path, size in ((self.requests_path, req_at), (self.results_path, res_at)):
                try:
                    if os.fstat(self._fds[path]).st_size != size:
                        os.ftruncate(self._fds[path], size)
                except OSError as cut:
                    self._writing = {}
                    raise _NotTakenBack(exc, cut) from exc
            self._writing = {}
            raise
        elapsed = time.perf_counter() - started
        with self.lock:
            self._crcs[self.requests_path].extend(zlib.crc32(line[:-1]) for line in request_lines)
            self._crcs[self.results_path].extend(zlib.crc32(line[:-1]) for line in result_lines)
            offset = req_at
            for rec, line in zip(work.requests, request_lines):
                self.index.add_request(rec, epoch_seconds(rec["requested_at"]), offset)
                offset += len(line)
            self._sizes[self.requests_path] = offset
            self._line_numbers[self.requests_path] += len(request_lines)
            offset = res_at
            for rec, line in zip(work.results, result_lines):
                self.index.apply_result(rec, epoch_seconds(rec["processed_at"]), offset)
                self._result_lines.add(offset)
                offset += len(line)
            self._sizes[self.results_path] = offset
            self._line_numbers[self.results_path] += len(result_lines)
            self._writing = {}
        self._add_commit()
        for observe in self._observers:
            observe(len(request_lines) + len(result_lines), elapsed)

    # -- replay / catch-up ----------------------------------------------------------
    def _flock(self) -> FileLock:
        assert self._lock_fd is not None, "the ledger is not open"
        return FileLock(self._lock_fd)

    def _catch_up(self, startup: bool = False) -> None:
        """Read what was appended since our last look (all of it at start-up)."""
        whole = self._sizes[self.requests_path] == 0 and self._sizes[self.results_path] == 0
        if whole:
            self.index.begin_bulk()  # sorted views built once at the end, not line by line
        elif startup:
            self.index.begin_tail()  # the tail after a checkpoint: views updated once per ticket
        requests_at = self._sizes[self.requests_path]
        try:
            self._ingest(self.requests_path, replay.apply_request_lines, replay.apply_request_line)
            self._ingest(self.results_path, replay.apply_result_lines, replay.apply_result_line)
            self._sync_commits()
            if self._sizes[self.requests_path] != requests_at:
                # Another process's submits: whichever catch-up takes them in (a read's Sync
                # too) wakes the ConsumeNext waiters, whose own size check then finds nothing new.
                self._opened.bump()
        finally:
            if whole:
                with self.lock:
                    self.index.end_bulk()
            elif startup:
                with self.lock:
                    self.index.end_tail()

    def _ingest(self, path: Path, apply_all: Callable[[LedgerIndex, list[bytes], list[int]], list[tuple[int, str]] | None],
                apply: Callable[[LedgerIndex, bytes, int], tuple[dict, int, str | None]]) -> None:
        """Apply the lines appended to ``path`` since our last look. Each chunk's lines
        go to ``apply_all`` (all in the store's canonical form: applied at once), else
        one by one to ``apply``, which says why a well-formed line is skipped (an
        anomaly) or raises LineError (a corrupt line, or a torn last one)."""
        fd = self._fds[path]
        start = self._sizes[path]
        end = os.fstat(fd).st_size
        if end == start:
            return
        if end < start:
            raise CorruptLog(path, 0, f"file shrank from {start} to {end} bytes under us")
        offset = start
        line_no = self._line_numbers[path]
        numbered = self._result_lines if path == self.results_path else None
        crcs = self._crcs[path]
        pending = b""
        pos = start
        index = self.index
        while pos < end:
            chunk = os.pread(fd, min(_READ_CHUNK, end - pos), pos)
            if not chunk:
                break
            pos += len(chunk)
            data = pending + chunk
            lines = data.split(b"\n")
            pending = lines.pop()
            # where each line starts: offset, then + len(line) + 1 per line
            starts = list(accumulate(map((1).__add__, map(len, lines)), initial=offset))
            with self.lock:
                skipped = apply_all(index, lines, starts)
                if skipped is not None:
                    crcs.extend(map(zlib.crc32, lines))
                    if numbered is not None:
                        numbered.add_all(starts[:-1])
                    for i, why in skipped:
                        self._anomaly(path, line_no + 1 + i, why)
                    line_no += len(lines)
                    offset = starts[-1]
                    continue
                for i, line in enumerate(lines):
                    line_no += 1
                    try:
                        reason = apply(index, line, offset)[2]
                        crcs.append(zlib.crc32(line))
                        if reason is not None:
                            self._anomaly(path, line_no, reason)
                    except records.LineError as exc:
                        is_last = pos >= end and i == len(lines) - 1 and not pending
                        if not is_last:
                            raise CorruptLog(path, line_no, str(exc)) from None
                        self._cut_torn_tail(path, offset, end, f"unparsable last line: {exc}")
                        self._line_numbers[path] = line_no - 1
                        self._sizes[path] = offset
                        return
                    if numbered is not None:
                        numbered.add(offset)
                    offset += len(line) + 1
        if pending:
            self._cut_torn_tail(path, offset, end, "last line has no newline")
        self._line_numbers[path] = line_no
        self._sizes[path] = offset

    def _anomaly(self, path: Path, line_no: int, reason: str) -> None:
        rel = path.relative_to(self.root).as_posix()
        self._anomalies.append(Anomaly(rel, line_no, reason))
        log.warning("skipped %s line %d: %s", rel, line_no, reason)

    def _cut_torn_tail(self, path: Path, cut_at: int, end: int, reason: str) -> None:
        fd = self._fds[path]
        try:
            # Same size: changes nothing, and fails exactly when the cut would
            # (an append-only or immutable file), before any copy is made.
            os.ftruncate(fd, end)
        except OSError as exc:
            raise TornTailStuck(path, f"{reason} ({end - cut_at} bytes)", exc) from None
        torn = os.pread(fd, end - cut_at, cut_at)
        aside = _aside_copy(path, torn, file_stamp(self.clock.now()))
        os.ftruncate(fd, cut_at)
        os.fsync(fd)
        log.warning("%s: %s; %d bytes moved aside to %s", path, reason, len(torn), aside.name)


def _aside_copy(path: Path, torn: bytes, stamp: str) -> Path:
    """``<file>.torn-<stamp>`` holding ``torn``; an identical copy left by an
    earlier start-up that stopped before the cut is reused, not repeated."""
    for earlier in sorted(path.parent.glob(path.name + ".torn-*")):
        try:
            if earlier.stat().st_size == len(torn) and earlier.read_bytes() == torn:
                return earlier
        except OSError:
            continue
    return create_new(path.parent, f"{path.name}.torn-{stamp}", "", torn)


class _IndexView:
    """``decide``'s view of the ledger: the index, and lines read by offset when asked
    (the writer holds the flock; the index only changes under it)."""

    __slots__ = ("store", "index")

    def __init__(self, store: JsonlLedger) -> None:
        self.store = store
        self.index = store.index

    def status(self, request_id: str) -> str | None:
        entry = self.index.get(request_id)
        return None if entry is None else entry.status

    def results(self, request_id: str) -> list[dict]:
        fd = self.store._fds[self.store.results_path]
        return [orjson.loads(read_line(fd, offset)) for offset in self.index.get(request_id).result_offsets()]  # type: ignore[union-attr]

    def request_with_key(self, idempotency_key: str) -> dict | None:
        rid = self.index.idempotency.get(idempotency_key)
        return None if rid is None else self.store.request_of(self.index.get(rid))  # type: ignore[arg-type]

    def open_in_order(self, types: tuple[str, ...]):
        return self.index.open_ids_in_order(types)

    def claimed_with(self, result_id: str) -> str | None:
        return self.index.claimed_with(result_id)


def _lower_priority() -> None:
    """Background work of the store runs at the lowest CPU priority (Linux: per thread)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):
        pass
