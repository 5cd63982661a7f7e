"""The PostgreSQL ledger on a real cluster: same answers as JSONL, contract files out, JSONL in."""
from __future__ import annotations

import random
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import grpc
import orjson
import psycopg
import pytest

from opsledger.client.ledger_client import OpsledgerClient
from opsledger.server.common.clock import FixedClock
from opsledger.server.errors import IllegalTransition, InvalidArgument, NotFound, Unavailable
from opsledger.server.ledger.backend import ClaimNext, Submit, Transition
from opsledger.server.ledger.jsonl.fsck import fsck
from opsledger.server.ledger.jsonl.store import JsonlLedger
from opsledger.server.ledger.machine import STATUSES, Event
from opsledger.server.ledger.postgres.ledger import PostgresLedger
from opsledger.server.ledger.postgres.transfer import TransferError, export_to, import_from
from opsledger.server.ledger.validation import REQUEST_TYPES
from tests.helpers import REPO, ServerThread, opsledger_cmd

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _script(ledger, clock: FixedClock, seed: int = 7) -> list:
    """A fixed sequence of calls; returns each outcome with ids replaced by submission order."""
    rng = random.Random(seed)
    order: dict[str, int] = {}
    outcomes = []

    def norm(value):
        if isinstance(value, dict):
            return {k: (order.get(v, v) if k == "request_id" else norm(v)) for k, v in value.items()
                    if k not in ("result_id", "last_result_id")}
        return value

    for step in range(400):
        if step % 25 == 0:
            clock.advance(rng.choice((0, 1, 30)))
        op = rng.random()
        try:
            if op < 0.35 or not order:
                key = f"k{rng.randrange(40)}" if rng.random() < 0.3 else None
                out = ledger.call(Submit(rng.choice(REQUEST_TYPES), {"n": rng.randrange(5)}, None, key))
                order.setdefault(out.request["request_id"], len(order))
                outcomes.append(("submit", out.appended, norm(out.request)))
            elif op < 0.5:
                types = tuple(rng.sample(REQUEST_TYPES, rng.randrange(3)))
                out = ledger.call(ClaimNext(types, "w", "claimed"))
                outcomes.append(("claim", norm(out) if out else None))
            else:
                rid = rng.choice(list(order))
                event = rng.choice(list(Event))
                out = ledger.call(Transition(rid, event, f"p{rng.randrange(3)}", "m", []))
                outcomes.append(("transition", norm(out)))
        except (IllegalTransition, InvalidArgument, NotFound) as exc:
            details = {k: v for k, v in vars(exc).items() if k not in ("last_result_id", "request_id")}
            outcomes.append(("refused", type(exc).__name__, str(details)))
    return outcomes


def _board(ledger, statuses, types, size=7) -> list:
    rows, cursor = [], None
    while True:
        page, cursor, total = ledger.page(statuses, types, size, cursor)
        rows += [{k: v for k, v in r.items() if k != "request_id"} for r in page]
        if cursor is None:
            return rows, total


def test_same_script_on_both_backends_agrees_and_the_export_passes_fsck(tmp_path, pg_url):
    jclock, pclock = FixedClock(START), FixedClock(START)
    jsonl = JsonlLedger(tmp_path / "jsonl", jclock, fsync=False).open()
    pg = PostgresLedger(pg_url, pclock).open()
    try:
        assert _script(jsonl, jclock) == _script(pg, pclock)
        for statuses in ((), ("OPEN",), ("IN_PROGRESS", "DONE"), STATUSES):
            for types in ((), ("ACKNOWLEDGE",), REQUEST_TYPES[:2]):
                assert _board(pg, statuses, types) == _board(jsonl, statuses, types), (statuses, types)
        assert pg.counts() == jsonl.counts()
        since = int(START.timestamp()) + 60
        assert pg.finished_since(since) == jsonl.finished_since(since)
        stale_pg, n_pg = pg.stale_in_progress(since, 5)
        stale_j, n_j = jsonl.stale_in_progress(since, 5)
        assert n_pg == n_j and [s.last_processed_at for s in stale_pg] == [s.last_processed_at for s in stale_j]
        req_lines, res_lines = pg.lines()
    finally:
        pg.close()
        jsonl.close()
    out = tmp_path / "export"
    counts = export_to(pg_url, out)
    assert counts["ticket_requests"] == len(req_lines) and counts["ticket_results"] == len(res_lines)
    assert (out / "state/tickets/ticket_requests.jsonl").read_bytes() == b"".join(x + b"\n" for x in req_lines)
    assert (out / "state/tickets/ticket_results.jsonl").read_bytes() == b"".join(x + b"\n" for x in res_lines)
    assert [f for f in fsck(out)] == []
    run = subprocess.run(opsledger_cmd("fsck", "--root", str(out)), cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    with pytest.raises(TransferError, match="already exists"):
        export_to(pg_url, out)


def test_import_moves_a_jsonl_ledger_line_for_line_and_refuses_twice(tmp_path, pg_url):
    clock = FixedClock(START)
    jsonl = JsonlLedger(tmp_path / "root", clock, fsync=False).open()
    _script(jsonl, clock, seed=3)
    want = jsonl.lines()
    board = _board(jsonl, (), ())
    counts = jsonl.counts()
    jsonl.close()
    run = subprocess.run(opsledger_cmd("import", "--from", str(tmp_path / "root"), "--store", pg_url),
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    pg = PostgresLedger(pg_url, clock).open()
    try:
        assert pg.lines() == want
        assert _board(pg, (), ()) == board and pg.counts() == counts
        # Watchers read the imported lines as one batch, a few at a time: every request, then every result.
        events, after = [], None
        while True:
            chunk, after = pg.events_after(after, 7)
            events += chunk
            if len(chunk) < 7:
                break
        assert [orjson.dumps(e.record) for e in events] == want[0] + want[1]
        # The imported ledger goes on: the machine still holds for imported tickets.
        open_rows, _c, _t = pg.page(("OPEN",), (), 1, None)
        if open_rows:
            pg.call(Transition(open_rows[0]["request_id"], Event.CONSUME, "after-import", "m"))
    finally:
        pg.close()
    again = subprocess.run(opsledger_cmd("import", "--from", str(tmp_path / "root"), "--store", pg_url),
                           cwd=REPO, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "already holds tickets" in again.stderr


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in root.rglob("*") if p.is_file() and p.parts[len(root.parts)] in ("reports", "state")
            and p.suffix == ".json" and not p.name.startswith(".")}


def test_import_moves_the_roots_artifacts_too_and_an_export_gives_the_root_back(tmp_path, pg_url):
    root = tmp_path / "root"
    root.mkdir()
    pub = subprocess.run(opsledger_cmd("bundle", "publish", "--root", str(root),
                                       str(REPO / "examples/strategy_example.json")),
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert pub.returncode == 0, pub.stderr
    srv = ServerThread(root).start()
    try:
        with OpsledgerClient(srv.target, retries=0, timeout=60) as c:
            rid = c.submit("ACKNOWLEDGE", {"message_id": "before-import"}).request_id
            c.consume(rid, "w")
            receipt = c.run_cycle().receipt
            c.run_cycle()  # two cycles: snapshots and the latest files both move
    finally:
        srv.stop()
    artifacts = _files(root)
    assert receipt.snapshot_ref in artifacts and len(artifacts) >= 8
    run = subprocess.run(opsledger_cmd("import", "--from", str(root), "--store", pg_url),
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert orjson.loads(run.stdout)["artifacts"] == len(artifacts)
    export_to(pg_url, tmp_path / "export")
    assert _files(tmp_path / "export") == artifacts  # byte for byte, at the same refs
    verify = subprocess.run(opsledger_cmd("verify", "receipt", "--root", str(tmp_path / "export"),
                                          str(tmp_path / "export" / receipt.snapshot_ref)),
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_import_refuses_a_database_that_already_holds_artifacts(tmp_path, pg_url):
    root = tmp_path / "root"
    JsonlLedger(root, FixedClock(START), fsync=False).open().close()
    pub = subprocess.run(opsledger_cmd("bundle", "publish", "--root", str(tmp_path / "cli"), "--store", pg_url,
                                       str(REPO / "examples/strategy_example.json")),
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert pub.returncode == 0, pub.stderr
    with psycopg.connect(pg_url) as conn:
        before = conn.execute("SELECT count(*) FROM artifacts").fetchone()[0]
    with pytest.raises(TransferError, match="already holds artifacts"):
        import_from(pg_url, root)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM artifacts").fetchone()[0] == before
        assert conn.execute("SELECT count(*) FROM ticket_requests").fetchone()[0] == 0


def test_import_refuses_logs_that_do_not_replay(tmp_path, pg_url):
    root = tmp_path / "root"
    clock = FixedClock(START)
    jsonl = JsonlLedger(root, clock, fsync=False).open()
    rid = jsonl.call(Submit("ACKNOWLEDGE", {}, None, None)).request["request_id"]
    jsonl.close()
    # A DONE with no IN_PROGRESS before it: well-formed, but not a step of the machine.
    bad = (b'{"schema":"TICKET_RESULT_V1","result_id":"00000000-0000-4000-8000-000000000001","request_id":"'
           + rid.encode() + b'","processed_at":"2026-03-01T18:00:00+09:00","status":"DONE","processor_id":"x",'
           b'"message":"","artifacts":[]}\n')
    with open(root / "state/tickets/ticket_results.jsonl", "ab") as f:
        f.write(bad)
    with pytest.raises(TransferError, match="do not replay cleanly"):
        import_from(pg_url, root)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM ticket_requests").fetchone()[0] == 0


def test_a_buggy_writer_cannot_record_a_second_in_progress_or_final(pg_url):
    pg = PostgresLedger(pg_url).open()
    rid = pg.call(Submit("ACKNOWLEDGE", {}, None, None)).request["request_id"]
    pg.call(Transition(rid, Event.CONSUME, "a", "m"))
    pg.call(Transition(rid, Event.COMPLETE_DONE, "a", "m"))
    pg.close()
    with psycopg.connect(pg_url) as conn:
        for status in ("IN_PROGRESS", "FAILED"):
            with pytest.raises(psycopg.errors.UniqueViolation):
                conn.execute("INSERT INTO ticket_results (line_no, result_id, request_id, status, processed_epoch, "
                             "line) VALUES (1000, gen_random_uuid(), %s, %s, 0, 'x')", (rid, status))
            conn.rollback()
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("UPDATE ticket_results SET line = 'x'")


def test_a_lock_timeout_answers_unavailable_and_leaves_health_serving(pg_url):
    """A row or table held past lock_timeout by another session is contention, not an
    outage: the call is refused (nothing written) and the replica stays SERVING."""
    failures: list[BaseException] = []
    pg = PostgresLedger(pg_url, on_failure=failures.append, lock_timeout_ms=200).open()
    try:
        rid = pg.call(Submit("ACKNOWLEDGE", {}, None, None)).request["request_id"]
        with psycopg.connect(pg_url) as holder:  # another replica's transaction, stuck holding locks
            holder.execute("SELECT 1 FROM tickets WHERE request_id = %s FOR UPDATE", (rid,))
            with pytest.raises(Unavailable, match="lock timeout"):
                pg.call(Transition(rid, Event.CONSUME, "p", "m"), timeout=30)
            holder.execute("LOCK TABLE ticket_requests IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(Unavailable, match="lock timeout"):
                pg.ticket(rid)
            assert failures == [] and pg.health().writable, (failures, pg.health())
        # The locks are gone: the same call goes through, recorded once.
        assert pg.call(Transition(rid, Event.CONSUME, "p", "m"), timeout=30)["status"] == "IN_PROGRESS"
        assert len(pg.ticket(rid).results) == 1
        assert failures == [] and pg.health().writable
    finally:
        pg.close()


def test_a_commit_whose_answer_is_lost_is_settled_without_a_second_line(pg_url, monkeypatch):
    """COMMIT reaches the database, the reply does not: the batch is found committed."""
    pg = PostgresLedger(pg_url).open()
    rid = pg.call(Submit("ACKNOWLEDGE", {}, None, None)).request["request_id"]
    original = psycopg.AsyncConnection.commit
    lost = {"n": 0}

    async def commit_then_lose(self):
        await original(self)
        if lost["n"] == 0:
            lost["n"] += 1
            raise psycopg.OperationalError("connection lost after COMMIT was sent")

    monkeypatch.setattr(psycopg.AsyncConnection, "commit", commit_then_lose)
    rec = pg.call(Transition(rid, Event.CONSUME, "p", "m"), timeout=30)
    monkeypatch.undo()
    view = pg.ticket(rid)
    pg.close()
    assert lost["n"] == 1
    assert [r["result_id"] for r in view.results] == [rec["result_id"]]


def test_a_commit_that_failed_runs_again_with_the_same_result_id(pg_url, monkeypatch):
    pg = PostgresLedger(pg_url).open()
    rid = pg.call(Submit("ACKNOWLEDGE", {}, None, None)).request["request_id"]
    original_commit = psycopg.AsyncConnection.commit
    seen: list[bytes] = []

    async def lose_first(self):
        if not seen:
            rows = await (await self.execute("SELECT line FROM ticket_results")).fetchall()
            seen.extend(bytes(r[0]) for r in rows)
            await self.rollback()
            raise psycopg.OperationalError("connection lost before COMMIT")
        await original_commit(self)

    monkeypatch.setattr(psycopg.AsyncConnection, "commit", lose_first)
    rec = pg.call(Transition(rid, Event.CONSUME, "p", "m"), timeout=30)
    monkeypatch.undo()
    lines = pg.lines()[1]
    pg.close()
    assert len(seen) == 1 and rec["result_id"].encode() in seen[0]  # the first try had written it
    assert len(lines) == 1 and rec["result_id"].encode() in lines[0]  # the second wrote it once, same id


# A COMMIT that hangs inside the database: a deferred trigger on result lines
# waits for an advisory lock the test holds (added to this test's own database).
_COMMIT_GATE = """
CREATE FUNCTION test_commit_gate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_advisory_xact_lock(4242); RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER test_commit_gate AFTER INSERT ON ticket_results
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_commit_gate();
"""


def test_a_lost_commit_still_running_is_ended_before_the_batch_runs_again(pg_url, monkeypatch):
    """The replica loses its connection while its COMMIT is still running in the database.
    Judging it rolled back and running it again beside it would claim a second ticket for
    one token-less ClaimNext (or fail on the first run's result id): the batch's own
    transaction must be settled first, and the caller told the one claim that is stored."""
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(_COMMIT_GATE)
    pg = PostgresLedger(pg_url).open()
    try:
        for i in range(2):
            pg.call(Submit("ACKNOWLEDGE", {"i": i}, None, None))
        original = psycopg.AsyncConnection.commit
        sent: dict[str, int] = {}

        async def send_commit_then_lose(self):
            if sent:
                return await original(self)
            sent["pid"] = self.info.backend_pid
            self.pgconn.send_query(b"COMMIT")  # on its way; its answer is never read
            while self.pgconn.flush():
                pass
            await self.close()
            raise psycopg.OperationalError("connection lost after COMMIT was sent")

        with psycopg.connect(pg_url, autocommit=True) as gate:
            gate.execute("SELECT pg_advisory_lock(4242)")
            monkeypatch.setattr(psycopg.AsyncConnection, "commit", send_commit_then_lose)
            claim = pg.execute(ClaimNext((), "w", "claimed"))
            # Open the gate once the replica has acted on the lost COMMIT: the first session is
            # gone, or another one waits behind it (a re-run). Bounded only so a bug cannot hang.
            for _ in range(600):
                if "pid" in sent and gate.execute(
                        "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = %(p)s) "
                        "OR EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted AND pid <> %(p)s)",
                        {"p": sent["pid"]}).fetchone()[0]:
                    break
                time.sleep(0.05)
            gate.execute("SELECT pg_advisory_unlock(4242)")
            assert "pid" in sent  # the COMMIT was sent and its answer lost: the fault fired
            rec = claim.result(30)
        monkeypatch.undo()
        stored = [orjson.loads(line) for line in pg.lines()[1]]
    finally:
        pg.close()
    assert rec is not None
    assert [(r["request_id"], r["result_id"]) for r in stored] == [(rec["request_id"], rec["result_id"])]


def test_server_on_postgres_serves_the_ticket_rpcs(tmp_path, pg_url):
    srv = ServerThread(tmp_path / "root", store=pg_url).start()
    try:
        with OpsledgerClient(srv.target, retries=0, timeout=10) as c:
            waiting = c.consume_next_future("w1", wait_seconds=10)
            sub = c.submit("ACKNOWLEDGE", {"message_id": "m1"}, idempotency_key="one")
            got = waiting.result(15)
            assert got.claimed and got.request_id == sub.request_id
            assert c.submit("ACKNOWLEDGE", {"message_id": "m1"}, idempotency_key="one").request_id == sub.request_id
            with pytest.raises(grpc.RpcError) as err:
                c.consume(sub.request_id, "w2")
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            c.complete(sub.request_id, "DONE", "w1", "ok")
            board = c.board()
            assert board.total_count == 1 and board.rows[0].current_status == 3  # DONE
            assert len(c.ticket(sub.request_id).results) == 2
    finally:
        srv.stop()
    assert not any((tmp_path / "root").glob("state/tickets/*.jsonl"))  # nothing under the data root


def test_consume_next_finds_a_ticket_another_batch_released_unmoved(tmp_path, pg_url):
    """Another replica's batch holds an OPEN ticket's row (say, a transition on it that it
    then refuses) while ConsumeNext looks: the claim skips it (SKIP LOCKED), and nothing is
    NOTIFY'd when it is released unmoved. The waiter must still find it before its deadline."""
    srv = ServerThread(tmp_path / "root", store=pg_url).start()
    try:
        with OpsledgerClient(srv.target, retries=0, timeout=10) as c:
            rid = c.submit("ACKNOWLEDGE", {"message_id": "m"}).request_id
            with psycopg.connect(pg_url) as other:
                other.execute("SELECT 1 FROM tickets WHERE request_id = %s FOR UPDATE", (rid,))
                assert not c.consume_next("probe").claimed  # the held row is skipped, not waited for
                waiter = c.consume_next_future("w", wait_seconds=60)
                time.sleep(0.5)  # the waiter has looked and is parked
                assert not waiter.done()
                other.rollback()  # released, still OPEN
            try:
                # Claimed long before the wait's own end: it looks again by itself (POLL_S).
                # Unfixed, it slept until its 60 s were up (a waiter's last look is at its end).
                got = waiter.result(30)
            finally:
                waiter.cancel()
            assert got.claimed and got.request_id == rid
    finally:
        srv.stop()


def test_serve_refuses_a_schema_that_is_not_current(pg_empty_url, tmp_path):
    run = subprocess.run(opsledger_cmd("serve", "--root", str(tmp_path), "--store", pg_empty_url,
                                       "--grpc-addr", "127.0.0.1:0", "--no-http"),
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "not current" in run.stderr and "opsledger db migrate" in run.stderr
    assert Path(tmp_path).exists()


def test_retry_tokens_answer_the_first_attempt_and_write_nothing_more(pg_url):
    pg = PostgresLedger(pg_url).open()
    try:
        ids = [pg.call(Submit("ACKNOWLEDGE", {"i": i}, None, None)).request["request_id"] for i in range(3)]
        first = pg.call(ClaimNext((), "w1", "claimed", token="t-claim"))
        again = pg.call(ClaimNext((), "w1", "claimed", token="t-claim"))
        assert again == first and first["request_id"] == ids[0]
        done = pg.call(Transition(ids[0], Event.COMPLETE_DONE, "w1", "ok", [], token="t-done"))
        assert pg.call(Transition(ids[0], Event.COMPLETE_DONE, "w1", "ok", [], token="t-done")) == done
        with pytest.raises(InvalidArgument, match="idempotency_key"):
            pg.call(Transition(ids[0], Event.COMPLETE_DONE, "w1", "other message", [], token="t-done"))
        # Many commands of one batch at once: claims and completes of the same tickets.
        futs = [pg.execute(ClaimNext((), f"w{i}", "c", token=f"tok{i}")) for i in range(4)]
        got = [f.result(30) for f in futs]
        assert sorted(g["request_id"] for g in got if g) == sorted(ids[1:])
        assert len(pg.lines()[1]) == 4  # the first claim, its completion, two claims of the four: no repeat wrote
    finally:
        pg.close()


def test_a_submit_on_one_replica_is_announced_to_another_by_notify(pg_url):
    """ConsumeNext waiters also look again every POLL_S, so a claim across replicas
    succeeds even without a wake-up: this checks the NOTIFY itself. Only another
    process's announced submits (or the listener reconnecting) move ``open_version``."""
    a = PostgresLedger(pg_url).open()
    b = None
    try:
        b = PostgresLedger(pg_url).open()
        time.sleep(1.5)  # the listener starts (and takes in what it may have missed: a bump)
        for n in range(3):
            before = b.open_version()
            time.sleep(1.0)  # nothing announced: the version stays where it is
            assert b.open_version() == before
            a.call(Submit("ACKNOWLEDGE", {"message_id": f"announced-{n}"}, None, None))
            deadline = time.monotonic() + 30  # a hang guard; the change is what is checked
            while b.open_version() == before and time.monotonic() < deadline:
                time.sleep(0.01)
            assert b.open_version() != before, "no NOTIFY reached the other replica"
    finally:
        a.close()
        if b is not None:
            b.close()

