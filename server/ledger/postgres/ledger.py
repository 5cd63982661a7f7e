"""The ``LedgerBackend`` on PostgreSQL: any number of replicas, one database.

Shell around the same pure parts as the JSONL store (machine, records,
decisions): the database holds the contract's lines byte for byte and a
current-status row per ticket; the engine enforces the state machine.

* Commands queue on this replica's own event loop (a thread; psycopg's
  async pool); a batcher takes every queued command (group commit), at most
  one per ticket or idempotency key per batch, and runs them as one
  transaction of three round trips: its reads in one pipeline, its array
  (``unnest``) writes in another, then the COMMIT; callers are answered only
  after the COMMIT. Two batches may be in flight at once, each on its own
  connection; row locks order them.
* A transition locks its ticket rows in one order, decides with the machine
  table, and writes with a compare-and-set (``UPDATE … WHERE status =
  <from>``); partial unique indexes refuse a second IN_PROGRESS or final
  result even from a writer that skipped all this.
* ConsumeNext claims with ``FOR UPDATE SKIP LOCKED`` on the OPEN index; a
  batch that added OPEN tickets sends one NOTIFY; a LISTEN connection wakes
  this replica's waiters (and, when it had to reconnect, wakes them anyway:
  the poll fallback). The claims of all local waiters go into one batch:
  one claim statement per replica at a time, not a herd.
* A COMMIT that got no answer (connection lost) is settled by the batch's
  transaction id (``pg_xact_status``): committed, it is answered; aborted,
  it runs again with the same ids, so a retry never adds a line; still in
  progress (its session alive, the COMMIT perhaps still arriving), that
  session is ended first and the question asked again: a re-run beside it
  could claim a second ticket or be refused the very transition it records.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import hashlib
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from opsledger.server.common.clock import Clock, epoch_seconds
from opsledger.server.errors import InvalidArgument, NotRecorded, Unavailable
from opsledger.server.ledger import records
from opsledger.server.ledger.backend import (
    Anomaly,
    BatchObserver,
    Claimed,
    ClaimNext,
    Health,
    LedgerEvent,
    StaleTicket,
    Submit,
    TicketView,
    Transition,
)
from opsledger.server.ledger.decide import Batch, Refusal, SnapshotView, claim_result_id, decide
from opsledger.server.ledger.machine import OPEN, STATUSES, TRANSITIONS, Event, event_for_result
from opsledger.server.ledger.postgres import migrate, sql, timeouts
from opsledger.server.ledger.validation import REQUEST_TYPES
from opsledger.server.settings import SettingsError

log = logging.getLogger("opsledger.postgres")

BATCH_MAX = 1024
IN_FLIGHT = 2  # batches committing at once on one replica
END_SESSION_WAIT_MS = 1000  # settling a lost COMMIT: how long to wait for the ended session to go
_NO_CURSOR = (1 << 63) - 1
# Waits for other replicas' work end after this long at most (then the caller looks
# again): transitions send no NOTIFY, and a claim skips rows another batch holds
# locked (SKIP LOCKED) with nothing to say when they are released unmoved.
POLL_S = 1.0
# Run the batch again: a lock cycle with another batch, or an idempotency key
# another replica stored after this batch looked (the next run sees it).
_RETRYABLE = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure, psycopg.errors.UniqueViolation)
# Caught together, then told apart by ``_connection_lost``: a lock or statement
# timeout is an OperationalError too, but the database that said so is up.
_CONNECTION = (psycopg.OperationalError, PoolTimeout)
_STOP = object()

# The status an event moves a ticket from, read off the machine table.
FROM_STATUS: dict[Event, str] = {event: current for (current, event) in TRANSITIONS}


def redact(url: str) -> str:
    """The URL without its password (for logs and /healthz)."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)


class _Work:
    """What one run of a batch decided (a batch may run again after a rollback)."""

    def __init__(self) -> None:
        self.answers: list[tuple[concurrent.futures.Future, object, bool]] = []
        self.lines = Batch()
        # The writing transaction's id and its session's pid (None: it wrote nothing).
        self.xid: str | None = None
        self.pid: int | None = None


class _Ids:
    """Fresh ids for the decide step, handed out again in the same order when a
    rolled-back batch runs again (a retry never makes a second id for a line)."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.at = 0

    def restart(self) -> _Ids:
        self.at = 0
        return self

    def __call__(self) -> str:
        if self.at == len(self.ids):
            self.ids.append(records.new_id())
        self.at += 1
        return self.ids[self.at - 1]


class _AskedView:
    """A view that notes which tickets' results the decide step asked for."""

    def __init__(self, view: SnapshotView) -> None:
        self.view, self.asked = view, set()  # type: ignore[var-annotated]

    def status(self, request_id):
        return self.view.status(request_id)

    def results(self, request_id):
        if request_id in self.view.history:
            return self.view.results(request_id)
        self.asked.add(request_id)
        return []

    def request_with_key(self, key):
        return self.view.request_with_key(key)

    def open_in_order(self, types):
        return self.view.open_in_order(types)

    def claimed_with(self, result_id):
        return self.view.claimed_with(result_id)


class _Inbox:
    """Commands from any thread to the batcher on the ledger's loop. A command put
    while the batcher is busy wakes nothing (each wake-up is a write to the loop's
    self-pipe and a turn of the loop); the batcher takes all that waits at once."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.items: collections.deque = collections.deque()
        self.lock = threading.Lock()
        self.armed = False  # a wake-up is on its way, or the batcher will look again anyway
        self.ready = asyncio.Event()

    def put(self, item) -> None:
        with self.lock:
            self.items.append(item)
            if self.armed:
                return
            self.armed = True
        self.loop.call_soon_threadsafe(self.ready.set)

    def take_nowait(self) -> list:
        with self.lock:
            out = list(self.items)
            self.items.clear()
            return out

    async def take(self) -> list:
        """At least one item; waits for it."""
        while True:
            with self.lock:
                if self.items:
                    out = list(self.items)
                    self.items.clear()
                    return out
                self.armed = False
                # Sets come only from this loop's callbacks: none runs between this and the wait.
                self.ready.clear()
            await self.ready.wait()


class _CommitUnknown(Exception):
    pass


class _Slot:
    """One of the in-flight batch places, released once."""

    def __init__(self, sem: asyncio.Semaphore) -> None:
        self.sem, self.held = sem, True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.sem.release()


class PostgresLedger:
    """The ``LedgerBackend`` on a PostgreSQL database (``url`` a libpq URL)."""

    name = "postgresql"

    def __init__(self, url: str, clock: Clock | None = None,
                 on_failure: Callable[[BaseException], None] | None = None,
                 on_recover: Callable[[], None] | None = None,
                 pool_size: int = 8, connect_timeout: float = timeouts.CONNECT_TIMEOUT_S,
                 lock_timeout_ms: int = timeouts.LOCK_TIMEOUT_MS) -> None:
        self.url = url
        self.lock_timeout_ms = lock_timeout_ms
        self.clock = clock or Clock()
        self.on_failure = on_failure
        self.on_recover = on_recover
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ledger-postgres", daemon=True)
        self._pool: AsyncConnectionPool | None = None
        self._inbox = _Inbox(self._loop)
        self._tasks: list[asyncio.Task] = []
        self._running: set[asyncio.Task] = set()
        self._observers: list[BatchObserver] = []
        self._open_version = 0
        self._commit_version = 0
        self._waiters: dict[asyncio.AbstractEventLoop, set[asyncio.Future]] = {}
        self._waiters_lock = threading.Lock()
        self._problem: str | None = None
        self._closed = False
        self._sender = uuid.uuid4().hex  # names this replica's NOTIFYs

    # -- life cycle ------------------------------------------------------------------
    def open(self) -> PostgresLedger:
        try:
            migrate.check(self.url)  # refuses a schema that is not current, naming the command
        except psycopg.OperationalError as exc:
            raise SettingsError(f"--store / OPSLEDGER_STORE: cannot reach {redact(self.url)}: {_short(exc)}") from None
        self._thread.start()
        try:
            self._sync(self._start(), timeout=60)
        except BaseException:
            self._stop_loop()
            raise
        return self

    async def _start(self) -> None:
        self._pool = AsyncConnectionPool(
            self.url, min_size=2, max_size=self.pool_size, open=False, timeout=self.connect_timeout,
            reconnect_timeout=timeouts.RECONNECT_S,
            kwargs=timeouts.connect_kwargs(lock_timeout_ms=self.lock_timeout_ms), name="opsledger")
        await self._pool.open(wait=True, timeout=30)
        self._in_flight = asyncio.Semaphore(IN_FLIGHT)
        self._tasks = [asyncio.create_task(self._batcher()), asyncio.create_task(self._listener())]

    def close(self) -> None:
        if self._closed or not self._thread.is_alive():
            return
        self._closed = True
        try:
            self._sync(self._shutdown(), timeout=60)
        finally:
            self._stop_loop()

    async def _shutdown(self) -> None:
        self._inbox.put(_STOP)
        await self._tasks[0]  # the batcher answers everything queued before it stops
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        self._tasks[1].cancel()
        await asyncio.gather(self._tasks[1], return_exceptions=True)
        await self._pool.close()  # type: ignore[union-attr]

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()

    def _sync(self, coro, timeout: float | None = 120):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # -- commands --------------------------------------------------------------------
    def execute(self, command) -> concurrent.futures.Future:
        fut: concurrent.futures.Future = concurrent.futures.Future()
        if self._closed:
            fut.set_exception(Unavailable("ledger is closed"))
            return fut
        self._inbox.put((command, fut))
        return fut

    async def run(self, command):
        return await asyncio.wrap_future(self.execute(command))

    def call(self, command, timeout: float | None = None):
        return self.execute(command).result(timeout)

    async def _batcher(self) -> None:
        pending: list = []  # commands not yet in a batch (deferred: same ticket or key as the last one)
        stopping = False
        while True:
            if not stopping:
                stopping = self._take(pending, self._inbox.take_nowait() if pending else await self._inbox.take())
            if not pending:
                if stopping:
                    return
                continue
            await self._in_flight.acquire()
            if not stopping:
                # What came in while a place was awaited joins this batch (larger batches, fewer COMMITs).
                stopping = self._take(pending, self._inbox.take_nowait())
            window, overflow = pending[:BATCH_MAX], pending[BATCH_MAX:]
            taken, rest, seen = [], [], set()  # type: ignore[var-annotated]
            for cmd, fut in window:
                keys = _conflict_keys(cmd)
                if keys & seen:
                    rest.append((cmd, fut))  # one command per ticket / key per batch
                else:
                    seen |= keys
                    taken.append((cmd, fut))
            pending = rest + overflow
            slot = _Slot(self._in_flight)
            task = asyncio.create_task(self._run_batch(taken, slot))
            task.add_done_callback(lambda _t, slot=slot: slot.release())  # type: ignore[misc]
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            if rest:
                await task  # the deferred command must see this batch's outcome

    def _take(self, pending: list, items: list) -> bool:
        """Move ``items`` into ``pending``; True once the stop is among them (what was
        queued before it is answered, what came after it is refused)."""
        stopping = False
        for item in items:
            if item is _STOP:
                stopping = True
            elif stopping:
                self._answer_all([item], Unavailable("ledger is closed"))
            else:
                pending.append(item)
        return stopping

    async def _run_batch(self, batch: list, slot: _Slot | None = None) -> None:
        batch = [(cmd, fut) for cmd, fut in batch if fut.set_running_or_notify_cancel()]
        if not batch:
            return
        attempts = 0
        ids = _Ids()
        wait: float | None = None  # how long to wait for a pooled connection (None: as health says)
        while True:
            attempts += 1
            work = _Work()
            started = time.perf_counter()
            try:
                await self._transaction(batch, work, ids, wait)
            except _RETRYABLE:
                if attempts < 5:
                    continue
                self._answer_all(batch, Unavailable("the database kept refusing the batch (lock conflicts)"))
                return
            except _CommitUnknown as exc:
                if slot is not None:
                    slot.release()  # settling may wait for the database: let other batches fail fast meanwhile
                committed = await self._settle(work)
                if committed is None:
                    self._answer_all(batch, NotRecorded(
                        f"database connection lost at COMMIT and its outcome not known within "
                        f"{timeouts.COMMIT_SETTLE_S} s: whether it was recorded "
                        "is unknown (GetTicket tells)", "COMMIT_OUTCOME_UNKNOWN", {}))
                    return
                if committed:
                    break
                if self._closed or attempts >= 3:
                    self._answer_all(batch, Unavailable(f"database connection lost at COMMIT: {exc.__cause__}"))
                    return
                continue  # rolled back: run it again with the same ids
            except _CONNECTION as exc:
                if not _connection_lost(exc):
                    # The database stopped a statement (lock or statement timeout): it is up and the
                    # transaction rolled back. Health stays as it is; the caller may retry.
                    self._answer_all(batch, _busy(exc))
                    return
                if self._problem is None and attempts < 2 and not self._closed:
                    # Perhaps a pooled connection that died with an earlier server (the database
                    # restarted): one more try on a fresh one before calling the database down,
                    # waiting no longer for it than a connection attempt takes.
                    wait = self.connect_timeout
                    continue
                self._down(exc)
                self._answer_all(batch, Unavailable(f"database unavailable: {_short(exc)}"))
                return
            except Exception as exc:  # a bug or a broken invariant: nothing was committed
                log.exception("ledger batch failed")
                self._answer_all(batch, Unavailable(f"database refused the batch: {_short(exc)}"))
                return
            break
        elapsed = time.perf_counter() - started
        self._up()
        for fut, value, is_error in work.answers:
            if is_error:
                fut.set_exception(value)  # type: ignore[arg-type]
            else:
                fut.set_result(value)
        lines = len(work.lines.requests) + len(work.lines.results)
        if work.lines.requests:
            self._bump()
        elif lines:
            self._commit_version += 1
            self._wake_all()
        if lines:
            for observe in self._observers:
                observe(lines, elapsed)

    def _answer_all(self, batch: list, exc: BaseException) -> None:
        for _cmd, fut in batch:
            if not fut.done():
                fut.set_exception(exc)

    async def _settle(self, work: _Work) -> bool | None:
        """After a lost COMMIT: did the batch's transaction commit? None when the
        database cannot tell within ``COMMIT_SETTLE_S``.

        Asked by transaction id, not by looking for a line: a line not there yet
        may belong to a COMMIT still under way. While the transaction is in
        progress its session is ended (a COMMIT already running finishes first:
        the server does not interrupt one), then the question is asked again."""
        if work.xid is None:
            return True  # it wrote nothing: its answers (refusals, empty claims) stand
        deadline = time.monotonic() + timeouts.COMMIT_SETTLE_S
        while (left := deadline - time.monotonic()) > 0:
            try:
                async with self._pool.connection(  # type: ignore[union-attr]
                        timeout=max(0.1, min(left, self._wait()))) as conn:
                    row = await (await conn.execute(sql.XACT_STATUS, (work.xid,))).fetchone()
                    assert row is not None  # SELECT of one value always has its row
                    if row[0] == "committed":
                        return True
                    if row[0] == "aborted":
                        return False
                    await conn.execute(sql.END_SESSION, (END_SESSION_WAIT_MS, work.pid, work.xid))
            except psycopg.Error as exc:  # unreachable, or not allowed to end the session: ask again
                log.warning("settling a lost COMMIT: %s", _short(exc))
                await asyncio.sleep(0.2)
        return None

    async def _transaction(self, batch: list, work: _Work, new_id: _Ids, wait: float | None = None) -> None:
        now = self.clock.now_iso()
        async with self._pool.connection(timeout=wait or self._wait()) as conn:  # type: ignore[union-attr]
            async with conn.cursor() as cur:
                view, requests = await self._load_view([c for c, _f in batch], cur)
                # Decide twice: first to learn which tickets' histories a refusal or a
                # retry token needs (read only those), then for real.
                await self._load_history(cur, view, set(view.claims.values()))
                asked = _AskedView(view)
                probe = Batch()
                for cmd, _fut in batch:
                    try:
                        decide(cmd, asked, probe, now, records.new_id)
                    except Exception:  # noqa: BLE001 - a probe on partial data; the real run decides
                        pass
                await self._load_history(cur, view, asked.asked)
                new_id.restart()
                claimed: list[int] = []  # answers to ClaimNext that claimed (or re-answered) a ticket
                for cmd, fut in batch:
                    outcome = decide(cmd, view, work.lines, now, new_id)
                    if isinstance(outcome, Refusal):
                        work.answers.append((fut, outcome.error, True))
                    else:
                        if isinstance(cmd, ClaimNext) and outcome.answer is not None:
                            claimed.append(len(work.answers))
                        work.answers.append((fut, outcome.answer, False))
                if claimed:
                    await self._with_requests(cur, work, claimed, requests)
                await self._write(cur, work, view)
            try:
                await conn.commit()
            except psycopg.OperationalError as exc:
                if not _connection_lost(exc):
                    raise  # the server answered the COMMIT with an error: it rolled back
                raise _CommitUnknown(str(exc)) from exc

    @staticmethod
    async def _with_requests(cur, work: _Work, claimed: list[int], requests: dict[str, dict]) -> None:
        """Claim answers carry their ticket's request: loaded with the claimable rows,
        submitted in this very batch, or (a retried claim) read now."""
        results: list[dict] = [work.answers[i][1] for i in claimed]  # type: ignore[misc]
        for rec in results:
            rid = rec["request_id"]
            if rid not in requests and (new := work.lines.submitted(rid)) is not None:
                requests[rid] = new
        missing = [rec["request_id"] for rec in results if rec["request_id"] not in requests]
        if missing:
            await cur.execute(sql.REQUESTS_OF, (missing,))
            requests.update((rid, orjson.loads(line)) for rid, line in await cur.fetchall())
        for i, rec in zip(claimed, results):
            work.answers[i] = (work.answers[i][0], Claimed(rec, requests[rec["request_id"]]), False)

    @staticmethod
    async def _load_history(cur, view: SnapshotView, rids: set[str]) -> None:
        need = [rid for rid in rids if rid not in view.history and records.is_canonical_uuid(rid)]
        if need:
            await cur.execute(sql.HISTORY, (need,))
            for rid in need:
                view.history[rid] = []
            for rid, line in await cur.fetchall():
                view.history[rid].append(orjson.loads(line))

    async def _load_view(self, commands: list, cur) -> tuple[SnapshotView, dict[str, dict]]:
        """The rows this batch's decisions read, locked where it will write: the
        statements go in one pipeline (one round trip)."""
        view = SnapshotView()
        conn = cur.connection
        named = sorted({c.request_id for c in commands if isinstance(c, Transition) and records.is_canonical_uuid(c.request_id)})
        keys = [c.idempotency_key for c in commands if isinstance(c, Submit) and c.idempotency_key is not None]
        claims = [c for c in commands if isinstance(c, ClaimNext)]
        tokens = [claim_result_id(c.token, c.processor_id) for c in claims if c.token is not None]
        asked: list[tuple[str, object]] = []
        requests: dict[str, dict] = {}
        async with conn.pipeline():
            if named:
                asked.append(("lock", await conn.execute(sql.LOCK_TICKETS, (named,))))
            if keys:
                asked.append(("keys", await conn.execute(sql.REQUESTS_BY_KEY, (keys,))))
            if tokens:
                asked.append(("claimed", await conn.execute(sql.CLAIMED_WITH, (tokens,))))
            for types in {tuple(sorted(c.types)) for c in claims}:
                if types:
                    asked.append(("open", await conn.execute(sql.CLAIM_TYPES, (list(types), named, len(claims)))))
                else:
                    asked.append(("open", await conn.execute(sql.CLAIM_ANY, (named, len(claims)))))
        candidates: dict[str, int] = {}
        for what, c in asked:
            rows = await c.fetchall()  # type: ignore[attr-defined]
            if what == "lock":
                for rid, status, rtype in rows:
                    view.statuses[rid], view.request_types[rid] = status, rtype
            elif what == "keys":
                for key, line in rows:
                    view.keys[key] = orjson.loads(line)
            elif what == "claimed":
                view.claims.update(dict(rows))
            else:
                for rid, rtype, seq, line in rows:
                    view.statuses[rid], view.request_types[rid] = OPEN, rtype
                    candidates[rid] = seq
                    requests[rid] = orjson.loads(line)  # at most one candidate per claim in the batch
        view.open_order = sorted(candidates, key=candidates.get)  # type: ignore[arg-type]
        return view, requests

    async def _write(self, cur, work: _Work, view: SnapshotView) -> None:
        """The batch's writes in one pipeline (one round trip; COMMIT follows)."""
        lines = work.lines
        conn = cur.connection
        types = dict(view.request_types)
        types.update((r["request_id"], r["request_type"]) for r in lines.requests)
        delta: dict[tuple[str, str], int] = {}
        for r in lines.requests:
            delta[(OPEN, r["request_type"])] = delta.get((OPEN, r["request_type"]), 0) + 1
        # One compare-and-set statement per round: a ticket moved twice in one batch
        # (claimed, then completed) is moved by two statements, in order.
        rounds: list[list[tuple[dict, str]]] = []
        seen: dict[str, int] = {}
        for rec in lines.results:
            rid = rec["request_id"]
            i = seen.get(rid, 0)
            seen[rid] = i + 1
            if i == len(rounds):
                rounds.append([])
            from_status = FROM_STATUS[event_for_result(rec["status"])]
            rounds[i].append((rec, from_status))
            t = types[rid]
            delta[(from_status, t)] = delta.get((from_status, t), 0) - 1
            delta[(rec["status"], t)] = delta.get((rec["status"], t), 0) + 1
        delta = {k: v for k, v in delta.items() if v}
        if not (lines.requests or lines.results):
            return
        moves: list[tuple[object, int]] = []
        async with conn.pipeline():
            if lines.requests:
                reqs = lines.requests
                await conn.execute(sql.INSERT_REQUESTS, {
                    "n": len(reqs), "ids": [r["request_id"] for r in reqs], "types": [r["request_type"] for r in reqs],
                    "epochs": [epoch_seconds(r["requested_at"]) for r in reqs],
                    "keys": [r.get("idempotency_key") for r in reqs], "lines": [records.encode(r)[:-1] for r in reqs]})
                await conn.execute(sql.NOTIFY, (self._sender,))
            left = len(lines.results)  # result lines from this round's first one to the batch's end
            for round_ in rounds:
                recs = [r for r, _f in round_]
                moves.append((await conn.execute(sql.MOVE, {
                    "take": len(lines.results) if left == len(lines.results) else 0, "left": left,
                    "ids": [r["request_id"] for r in recs], "from": [f for _r, f in round_],
                    "to": [r["status"] for r in recs], "results": [r["result_id"] for r in recs],
                    "who": [r["processor_id"] for r in recs], "epochs": [epoch_seconds(r["processed_at"]) for r in recs],
                    "lines": [records.encode(r)[:-1] for r in recs]}), len(recs)))
                left -= len(recs)
            keys = sorted(delta)
            finish = await conn.execute(sql.FINISH, {
                "statuses": [k[0] for k in keys], "types": [k[1] for k in keys], "deltas": [delta[k] for k in keys],
                "nreq": len(lines.requests), "nres": len(lines.results)})
        for moved_cur, wanted in moves:
            moved = (await moved_cur.fetchone())[0]  # type: ignore[attr-defined]
            if moved != wanted:
                # Every row was locked and decided on above: a miss is a broken invariant.
                raise RuntimeError(f"compare-and-set moved {moved} of {wanted} tickets")
        work.xid, work.pid = await finish.fetchone()

    # -- health ----------------------------------------------------------------------
    def _wait(self) -> float:
        """How long to wait for a pooled connection: briefly while the database is
        known to be down (callers get UNAVAILABLE at once), longer while it is up
        (a pool refilling after a restart is not an outage)."""
        return self.connect_timeout if self._problem is not None else 5.0

    def _down(self, exc: BaseException) -> None:
        if self._problem is None:
            self._problem = f"database unavailable: {_short(exc)}"
            log.error("ledger database unavailable: %s", _short(exc))
            if self.on_failure is not None:
                self.on_failure(exc)

    def _up(self) -> None:
        if self._problem is not None:
            self._problem = None
            log.warning("ledger database reachable again")
            if self.on_recover is not None:
                self.on_recover()

    def health(self) -> Health:
        problem = self._problem
        return Health(self.name, redact(self.url), problem is None, problem)

    def anomalies(self) -> list[Anomaly]:
        return []  # rows are checked by the engine as they are written

    def on_batch(self, observer: BatchObserver) -> None:
        self._observers.append(observer)

    # -- ConsumeNext wake-ups ----------------------------------------------------------
    async def _listener(self) -> None:
        """LISTEN on its own connection; reconnects with a wake-up (the poll fallback)."""
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True,
                                                             **timeouts.connect_kwargs())
            except _CONNECTION as exc:
                self._down(exc)
                await asyncio.sleep(0.5)
                continue
            try:
                async with conn:
                    await conn.execute(f"LISTEN {sql.CHANNEL}")
                    self._up()
                    self._bump(commits=False)  # anything submitted while we were not listening
                    while True:
                        async for note in conn.notifies(timeout=1.0):
                            if note.payload != self._sender:  # our own batches woke our waiters at commit
                                self._bump()
                        await conn.execute("SELECT 1")  # notices a dead server while idle
                        self._up()  # reachable: health follows within a second either way
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._down(exc)
                await asyncio.sleep(0.2)

    def _bump(self, commits: bool = True) -> None:
        self._open_version += 1
        if commits:
            self._commit_version += 1
        self._wake_all()

    def _wake_all(self) -> None:
        with self._waiters_lock:
            pending = [(loop, list(futs)) for loop, futs in self._waiters.items() if futs]
        for loop, futs in pending:
            try:
                loop.call_soon_threadsafe(_wake, futs)
            except RuntimeError:
                pass

    def open_version(self) -> int:
        return self._open_version

    # -- events (WatchTickets) ----------------------------------------------------------
    def commit_version(self) -> int:
        return self._commit_version

    async def wait_for_commit(self, since: int, timeout: float) -> None:
        """Woken by this replica's commits and by other replicas' submissions
        (NOTIFY); other replicas' transitions are found by polling every
        ``POLL_S`` (the feed reads ``events_after`` after every return)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(timeout, POLL_S)
        while self._commit_version == since and (left := deadline - loop.time()) > 0:
            await self._wait_unless(lambda: self._commit_version != since, left)

    def head_revision(self) -> str:
        return self._read(_head_revision)

    def events_after(self, after: str | None, limit: int) -> tuple[list[LedgerEvent], str]:
        return self._read(_events_after, after, limit)

    async def wait_for_open(self, types: tuple[str, ...], timeout: float, since: int) -> None:
        """Woken by submits on any replica (NOTIFY), and after ``POLL_S`` in any case: an
        OPEN ticket another batch held locked while this replica's claim looked (a refused
        transition on it, a claim of another replica that rolled back) sends no NOTIFY when
        it is released, and must not leave a waiter asleep until its deadline."""
        await self._wait_unless(lambda: self._open_version != since, min(timeout, POLL_S))

    async def _wait_unless(self, done: Callable[[], bool], timeout: float) -> None:
        """Wait for the next wake-up (or ``timeout``) unless ``done()`` already holds."""
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        with self._waiters_lock:  # armed before the check: no wake-up is missed
            self._waiters.setdefault(loop, set()).add(waiter)
        try:
            if not done():
                await asyncio.wait({waiter}, timeout=timeout)
        finally:
            with self._waiters_lock:
                mine = self._waiters.get(loop, set())
                mine.discard(waiter)
                if not mine:
                    self._waiters.pop(loop, None)

    # -- queries ---------------------------------------------------------------------
    def _read(self, fn, *args):
        """Run ``fn(cur, *args)`` in one read-only snapshot; connection trouble is Unavailable."""
        async def go():
            for attempt in (1, 2):
                try:
                    async with self._pool.connection(timeout=self._wait()) as conn, conn.transaction():
                        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                        async with conn.cursor() as cur:
                            return await fn(cur, *args)
                except _CONNECTION as exc:
                    if not _connection_lost(exc):
                        raise _busy(exc) from None  # not down, and running a timed-out query again would not help
                    if attempt == 1 and self._problem is None:
                        continue  # perhaps a pooled connection that died with an earlier server: once more
                    self._down(exc)
                    raise Unavailable(f"database unavailable: {_short(exc)}") from None
        return self._sync(go())

    def page(self, statuses: tuple[str, ...], types: tuple[str, ...], size: int,
             before: int | None) -> tuple[list[dict], int | None, int]:
        return self._read(_page, tuple(statuses), tuple(types), size, before)

    def ticket(self, request_id: str) -> TicketView | None:
        return self._read(_ticket, request_id)

    def counts(self) -> dict[str, int]:
        return self._read(_counts)

    def finished_since(self, since: int) -> dict[str, int]:
        return self._read(_finished_since, since)

    def stale_in_progress(self, before: int, limit: int) -> tuple[list[StaleTicket], int]:
        return self._read(_stale, before, limit)

    def lines(self) -> tuple[list[bytes], list[bytes]]:
        return self._read(_lines)

    def result_line(self, n: int) -> bytes | None:
        return self._read(_result_line, n)

    def line_counts(self) -> tuple[int, int]:
        return self._read(_line_counts)


# -- reads (each given a cursor inside one snapshot) ---------------------------------------
async def _page(cur, statuses, types, size, before):
    params: dict = {"before": _NO_CURSOR if before is None else before, "n": size + 1}
    chosen = statuses or STATUSES
    if types:
        i = 0
        for _s in chosen:
            for t in types:
                params[f"t{i}"] = t
                i += 1
    await cur.execute(sql.page_keys(statuses, types), params)
    keys = [row[0] for row in await cur.fetchall()]
    more = len(keys) > size
    keys = keys[:size]
    rows = []
    if keys:
        await cur.execute(sql.PAGE_ROWS, (keys,))
        for _key, req, res in await cur.fetchall():
            rows.append(records.board_row(orjson.loads(req), orjson.loads(res) if res is not None else None))
    await cur.execute(sql.TOTAL, (list(chosen), list(types or REQUEST_TYPES)))
    total = (await cur.fetchone())[0]
    return rows, (keys[-1] if more and keys else None), int(total)


async def _ticket(cur, request_id):
    await cur.execute(sql.TICKET_REQUEST, (request_id,))
    row = await cur.fetchone()
    if row is None:
        return None
    request = orjson.loads(row[0])
    await cur.execute(sql.TICKET_RESULTS, (request_id,))
    rows = await cur.fetchall()
    results = [orjson.loads(r[0]) for r in rows]
    return TicketView(records.board_row(request, results[-1] if results else None), request, results,
                      [int(r[1]) for r in rows])


async def _counts(cur):
    await cur.execute(sql.COUNTS)
    out = {s: 0 for s in STATUSES}
    for status, n in await cur.fetchall():
        out[status] = int(n)
    return out


async def _finished_since(cur, since):
    await cur.execute(sql.FINISHED_SINCE, (since,))
    out = {"DONE": 0, "FAILED": 0}
    for status, n in await cur.fetchall():
        out[status] = int(n)
    return out


async def _stale(cur, before, limit):
    await cur.execute(sql.STALE_COUNT, (before,))
    total = int((await cur.fetchone())[0])
    if limit <= 0:
        return [], total
    await cur.execute(sql.STALE, (before, limit))
    chosen = [StaleTicket(rid, rtype, orjson.loads(line)["processed_at"]) for rid, rtype, line in await cur.fetchall()]
    return chosen, total


async def _result_line(cur, n):
    if n < 1:
        return None
    await cur.execute(sql.RESULT_LINE, (n,))
    row = await cur.fetchone()
    return bytes(row[0]) if row else None


async def _line_counts(cur):
    await cur.execute(sql.LINE_COUNTS)
    heads = dict(await cur.fetchall())
    return int(heads["requests"]), int(heads["results"])


async def _lines(cur):
    await cur.execute(sql.REQUEST_LINES)
    reqs = [bytes(r[0]) for r in await cur.fetchall()]
    await cur.execute(sql.RESULT_LINES)
    ress = [bytes(r[0]) for r in await cur.fetchall()]
    return reqs, ress


# -- events: batch after batch, inside a batch its requests then its results --------------
# A revision is (batch number, events of that batch already seen) plus a tag
# that ties it to this ledger, so a token of another ledger is refused.
_TOKEN = re.compile(r"p1\.([0-9a-f]{1,16})\.([0-9a-f]{1,16})\.([0-9a-f]{12})")


def _event_tag(ledger_id: str, batch: int, k: int) -> str:
    return hashlib.sha256(f"{ledger_id}/{batch}/{k}".encode()).hexdigest()[:12]


def _event_token(ledger_id: str, batch: int, k: int) -> str:
    return f"p1.{batch:x}.{k:x}.{_event_tag(ledger_id, batch, k)}"


async def _ledger_id(cur) -> tuple[str, int]:
    await cur.execute(sql.LEDGER_ID)
    ledger_id, batches = await cur.fetchone()
    return ledger_id, int(batches)


async def _head_revision(cur) -> str:
    ledger_id, batches = await _ledger_id(cur)
    if batches == 0:
        return _event_token(ledger_id, 0, 0)
    await cur.execute(sql.BATCH_SIZE, (batches,))
    return _event_token(ledger_id, batches, int((await cur.fetchone())[0]))


async def _events_after(cur, after, limit):
    ledger_id, batches = await _ledger_id(cur)
    if after is None:
        batch, k = 0, 0
    else:
        m = _TOKEN.fullmatch(after)
        if m is None:
            raise InvalidArgument.one("after", "is not a revision token (use the revision of an event)")
        batch, k = int(m.group(1), 16), int(m.group(2), 16)
        if m.group(3) != _event_tag(ledger_id, batch, k):
            raise InvalidArgument.one("after", "is a revision of another ledger")
        if batch > batches:
            raise InvalidArgument.one("after", "is not a revision of this ledger")
    reached = _event_token(ledger_id, batch, k)
    if limit <= 0:
        return [], reached
    await cur.execute(sql.BATCHES_FROM, (max(batch, 1), limit + 1))
    spans = await cur.fetchall()
    if batch and (not spans or spans[0][0] != batch or k > spans[0][2] - spans[0][1] + spans[0][4] - spans[0][3]):
        raise InvalidArgument.one("after", "is not a revision of this ledger")
    # (batch, index in batch, log, line_no) of the next ``limit`` events: a batch's
    # lines are walked from the first one wanted, never expanded whole (an import is one batch).
    wanted: list[tuple[int, int, str, int]] = []
    for no, req_lo, req_hi, res_lo, res_hi in spans:
        skip = k if no == batch else 0
        n_req = req_hi - req_lo
        for i in range(skip, n_req + res_hi - res_lo):
            if len(wanted) == limit:
                break
            if i < n_req:
                wanted.append((no, i + 1, "requests", req_lo + i + 1))
            else:
                wanted.append((no, i + 1, "results", res_lo + i - n_req + 1))
    if not wanted:
        return [], reached
    found: dict[tuple[str, int], tuple[bytes, str]] = {}
    for log_name, query in (("requests", sql.EVENT_REQUESTS), ("results", sql.EVENT_RESULTS)):
        numbers = [w[3] for w in wanted if w[2] == log_name]
        if numbers:
            await cur.execute(query, (min(numbers) - 1, max(numbers)))
            for line_no, line, request_type in await cur.fetchall():
                found[(log_name, line_no)] = (bytes(line), request_type)
    events = []
    for no, i, log_name, line_no in wanted:
        line, request_type = found[(log_name, line_no)]
        rec = orjson.loads(line)
        submitted = log_name == "requests"
        events.append(LedgerEvent(
            revision=_event_token(ledger_id, no, i),
            kind="SUBMITTED" if submitted else "TRANSITION",
            request_id=rec["request_id"], request_type=request_type,
            status=OPEN if submitted else rec["status"], record=rec))
    return events, events[-1].revision


# -- pure helpers -----------------------------------------------------------------------
def _conflict_keys(cmd) -> set:
    if isinstance(cmd, Transition):
        return {("ticket", cmd.request_id)}
    if isinstance(cmd, Submit) and cmd.idempotency_key is not None:
        return {("key", cmd.idempotency_key)}
    return set()


def _connection_lost(exc: BaseException) -> bool:
    """True when the connection failed, not a statement: no connection from the pool,
    a broken socket (no SQLSTATE: the client noticed), a connection exception (class
    08) or an operator intervention ending the session (57P: shutdown, restart, dropped
    database). A lock timeout, statement timeout or deadlock is an answer from a
    database that is up."""
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    return state is None or state.startswith(("08", "57P"))


def _busy(exc: BaseException) -> Unavailable:
    # UNAVAILABLE, not ABORTED: nothing was recorded and the same call may simply be sent
    # again later, which is what this code means to the clients (they retry it with backoff).
    return Unavailable(f"database busy, nothing was recorded: {_short(exc)}")


def _wake(waiters: list[asyncio.Future]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


__all__ = ["PostgresLedger", "FROM_STATUS"]
