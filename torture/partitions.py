"""Partition scenarios: replicas under load while links go down and come back,
every call recorded and the history checked against the export afterwards.

    python -m torture.partitions [--short]   # prints one JSON row per scenario

Each scenario builds its own topology (torture/netns.py), runs clients against
every replica, injects its fault, heals, waits for the replicas to serve again,
exports the ledger (``opsledger export``) and runs the checker
(torture/history.py). Time to detect = partition until the cut-off replica's
health says NOT_SERVING; time to recover = heal until it says SERVING again.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import grpc
import psycopg
from grpc_health.v1 import health_pb2

from opsledger.client.ledger_client import OpsledgerClient
from opsledger.server.artifacts import layout
from opsledger.server.ledger.postgres import locks, migrate
from opsledger.v1 import tickets_pb2 as pb
from tests.helpers import ServerProcess, grpc_health, opsledger_cmd
from torture.history import History, Op, Write, check, check_cycles, lost_answers
from torture.netns import Topology

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
CALL_TIMEOUT_S = 10.0  # a client's deadline per call; the replica must answer well before it


def health(target: str) -> int:
    """The replica's health, or -1 when it does not answer (cut off, or stopped)."""
    try:
        return grpc_health(target, timeout=2)
    except grpc.RpcError:
        return -1


def wait_health(target: str, want: int, since: float, limit: float = 60.0) -> float | None:
    """Seconds from ``since`` until ``target`` reports ``want`` (None: not within ``limit``)."""
    while time.monotonic() < since + limit:
        if health(target) == want:
            return time.monotonic() - since
        time.sleep(0.1)
    return None


def _attempts(history: History, op: Op, fn, tries: int = 6) -> Op:
    """A logical call and its retries under one idempotency key, each recorded."""
    for n in range(tries):
        attempt = Op(op.kind, op.key, op.client, time.monotonic(), request_id=op.request_id,
                     processor=op.processor, status=op.status)
        history.call(attempt, fn)
        if attempt.outcome != "unknown":
            return attempt
        time.sleep(0.2 * (n + 1))
    return attempt


def client_loop(history: History, target: str, name: str, stop: threading.Event) -> None:
    with OpsledgerClient(target, retries=0, timeout=CALL_TIMEOUT_S) as c:
        i = 0
        while not stop.is_set():
            i += 1
            key = f"{name}-{i}"
            sub = _attempts(history, Op("submit", key, name, 0.0),
                            lambda key=key: c.submit("ACKNOWLEDGE", {"message_id": key}, idempotency_key=key))
            if sub.outcome != "ok":
                continue
            rid = sub.request_id
            con = _attempts(history, Op("consume", f"{key}-c", name, 0.0, request_id=rid, processor=name),
                            lambda rid=rid, key=key: c.consume(rid, name, idempotency_key=f"{key}-c"))
            if con.outcome != "ok":
                continue
            _attempts(history, Op("complete", f"{key}-d", name, 0.0, request_id=rid, processor=name, status="DONE"),
                      lambda rid=rid, key=key: c.complete(rid, "DONE", name, "done", idempotency_key=f"{key}-d"))


def board_statuses(target: str) -> dict[str, str]:
    out: dict[str, str] = {}
    with OpsledgerClient(target, retries=4, timeout=30) as c:
        token = ""
        while True:
            page = c.board(page_size=500, page_token=token)
            for row in page.rows:
                out[row.request_id] = pb.TicketStatus.Value.Name(row.current_status)
            token = page.next_page_token
            if not token:
                return out


class Run:
    """One scenario's topology, replicas, clients and history."""

    def __init__(self, work: Path, replicas: int = 2, clients: int = 8, settings: dict[str, str] | None = None) -> None:
        self.work = work
        self.settings = settings
        self.export = work / "export"
        self.n_replicas = replicas
        self.n_clients = clients
        self.history = History()
        self.stop = threading.Event()

    def __enter__(self) -> Run:
        self.topo = Topology(self.n_replicas, settings=self.settings).__enter__()  # its own folder the postgres user can reach
        try:
            self.topo.cluster.create_database("opsledger")
            migrate.migrate(self.topo.local_url("opsledger"), log=lambda _m: None)
            self.replicas = [ServerProcess(self.work / f"replica{i}", "--store", self.topo.url(i, "opsledger"),
                                           log_level="WARNING") for i in range(self.n_replicas)]
        except BaseException:
            self.topo.close()
            raise
        self.threads = [threading.Thread(target=client_loop, daemon=True,
                                         args=(self.history, self.replicas[k % self.n_replicas].target, f"c{k}",
                                               self.stop))
                        for k in range(self.n_clients)]
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)
        try:
            for r in self.replicas:
                if r.proc.poll() is None:
                    r.terminate(60)
        finally:
            self.topo.close()

    def finish(self, name: str, detect: list, recover: list) -> dict:
        """Stop the clients, export, check; the scenario's row."""
        self.stop.set()
        for t in self.threads:
            t.join(60)
        board = board_statuses(self.replicas[-1].target)
        export = self.export
        subprocess.run(opsledger_cmd("export", "--to", str(export), "--store", self.topo.local_url("opsledger")),
                       check=True, capture_output=True)
        violations = check(self.history, export, board)
        counts = self.history.counts()
        return {"scenario": name, "operations": len(self.history.ops), **counts,
                "violations": len(violations), "first_violations": violations[:5],
                "verdict": "pass" if not violations and None not in detect + recover else "FAIL",
                "detect_s": _worst(detect), "recover_s": _worst(recover),
                "longest_call_s": round(max((op.complete - op.invoke for op in self.history.ops), default=0.0), 2),
                "longest_call": max(((op.complete - op.invoke, f"{op.kind} {op.outcome} {op.code}")
                                     for op in self.history.ops), default=(0, ""))[1]}


def _worst(values: list) -> float | None:
    return None if not values or None in values else round(max(values), 2)


def replica_partitioned(work: Path, down_s: float, load_s: float) -> dict:
    with Run(work) as run:
        time.sleep(load_s)
        at = run.topo.partition(0)
        detect = [wait_health(run.replicas[0].target, NOT_SERVING, at)]
        time.sleep(max(0.0, down_s - (time.monotonic() - at)))
        healed = run.topo.heal(0)
        recover = [wait_health(run.replicas[0].target, SERVING, healed)]
        time.sleep(load_s)
        return run.finish("replica partitioned mid-load, healed", detect, recover)


def database_side(work: Path, down_s: float, load_s: float) -> dict:
    with Run(work) as run:
        time.sleep(load_s)
        at = run.topo.partition_all()
        detect = [wait_health(r.target, NOT_SERVING, at) for r in run.replicas]
        time.sleep(max(0.0, down_s - (time.monotonic() - at)))
        healed = run.topo.heal_all()
        recover = [wait_health(r.target, SERVING, healed) for r in run.replicas]
        time.sleep(load_s)
        return run.finish("database side partitioned from all replicas, healed", detect, recover)


def flapping(work: Path, cycles: int, load_s: float) -> dict:
    with Run(work, clients=16) as run:
        time.sleep(load_s)
        for _ in range(cycles):
            run.topo.partition_all()
            time.sleep(1.0)
            run.topo.heal_all()
            time.sleep(1.0)
        healed = time.monotonic()
        recover = [wait_health(r.target, SERVING, healed) for r in run.replicas]
        time.sleep(load_s)
        row = run.finish(f"flapping links ({cycles} x 1 s down / 1 s up), 16 clients", [], recover)
        row["detect_s"] = "n/a (1 s outages)"
        return row


# -- a partition during a batched commit --------------------------------------------------

GATE = (0x7E57, 1)  # the commit gate's advisory lock: a namespace of its own, no product key
GATE_SQL = f"""
CREATE FUNCTION torture_commit_gate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_advisory_xact_lock_shared({GATE[0]}, {GATE[1]}); RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER torture_commit_gate AFTER INSERT ON ticket_requests
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION torture_commit_gate();
CREATE CONSTRAINT TRIGGER torture_commit_gate AFTER INSERT ON ticket_results
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION torture_commit_gate();
"""


class CommitGate:
    """Lets the partition strike while COMMITs are in flight, seen from outside.

    A deferred constraint trigger (installed in the scenario's database, not part of
    the product) takes a shared advisory lock while a transaction that wrote ledger
    lines commits. While the gate is closed (this connection holds that lock), every
    such COMMIT waits inside PostgreSQL: sent, not yet answered, visible in pg_locks.
    The scenario then drops the database's packets to the replicas and opens the
    gate: the held COMMITs land and their answers are lost."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)  # the unix socket: never partitioned
        self.conn.execute(GATE_SQL)

    @contextmanager
    def closed(self) -> Iterator[None]:
        self.conn.execute("SELECT pg_advisory_lock(%s, %s)", GATE)
        try:
            yield
        finally:
            self.conn.execute("SELECT pg_advisory_unlock(%s, %s)", GATE)

    def waiting(self) -> dict[str, int]:
        """COMMITs held at the gate, by the replica address that sent them."""
        rows = self.conn.execute(
            "SELECT host(a.client_addr), count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.classid = %s AND l.objid = %s AND NOT l.granted GROUP BY 1",
            GATE).fetchall()
        return {addr: n for addr, n in rows}

    def close(self) -> None:
        self.conn.close()


def lost_replies(work: Path, cuts: int, hold_s: float, load_s: float) -> dict:
    """Replies of COMMITs in flight lost, the COMMITs landed: each cut closes the gate
    until a COMMIT waits at it (one at a time: batches serialise on the ledger's head
    row, so the others wait behind it, uncommitted), drops the database's
    packets to both replicas, opens the gate, holds the cut ``hold_s`` (longer than
    the replica's TCP timeout plus COMMIT_SETTLE_S, so the replica answers unknown)
    and restores the replies."""
    with Run(work) as run:
        gate = CommitGate(run.topo.local_url("opsledger"))
        detect: list = []
        recover: list = []
        held = 0
        try:
            time.sleep(load_s)
            for _ in range(cuts):
                with gate.closed():
                    until = time.monotonic() + 5.0
                    while not gate.waiting() and time.monotonic() < until:
                        time.sleep(0.005)
                    held += sum(gate.waiting().values())
                    at = time.monotonic()
                    for i in range(run.n_replicas):
                        run.topo.drop_replies(i)
                detect += [wait_health(r.target, NOT_SERVING, at) for r in run.replicas]
                time.sleep(max(0.0, hold_s - (time.monotonic() - at)))
                healed = time.monotonic()
                for i in range(run.n_replicas):
                    run.topo.restore_replies(i)
                recover += [wait_health(r.target, SERVING, healed) for r in run.replicas]
                time.sleep(load_s)
        finally:
            gate.close()
        row = run.finish(f"a partition during batched commits ({cuts} x the replies of the COMMITs in flight lost)",
                         detect, recover)
        lost = lost_answers(run.history, run.export)
        row.update(commits_held=held, **lost)
        row["notes"] = (f"{held} COMMITs held in flight when the replies were cut; {lost['lost']} calls answered "
                        f"COMMIT_OUTCOME_UNKNOWN, {lost['landed']} of them landed and {lost['converged']} of those "
                        "were answered ok by a retry with the same key (one effect)")
        if lost["landed"] == 0 or lost["converged"] != lost["landed"]:
            # No lost answer that landed: the scenario proved nothing (or a retry never converged).
            row["verdict"] = "FAIL"
        return row


# -- a partition of the replica holding the cycle lock ---------------------------------------

CYCLE_SETTINGS = {  # what the cycle checker reads back: commit times and when each session ended
    "track_commit_timestamp": "on", "log_disconnections": "on", "log_line_prefix": "'%m [%p] '",
    "log_timezone": "'UTC'"}
AUDIT_SQL = f"""
CREATE TABLE torture_artifact_writes (path text, writer_addr text, at timestamptz,
  holder_pid int, holder_addr text, holder_start timestamptz);
CREATE FUNCTION torture_artifact_write() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE h record;
BEGIN
  SELECT l.pid, host(a.client_addr) AS addr, a.backend_start AS started INTO h
    FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
   WHERE l.locktype = 'advisory' AND l.classid = {locks.NAMESPACE} AND l.objid = {locks.CYCLE}
     AND l.objsubid = 2 AND l.granted;
  INSERT INTO torture_artifact_writes
    VALUES (NEW.path, host(inet_client_addr()), clock_timestamp(), h.pid, h.addr, h.started);
  RETURN NULL;
END $$;
CREATE TRIGGER torture_artifact_write AFTER INSERT OR UPDATE ON artifacts
  FOR EACH ROW EXECUTE FUNCTION torture_artifact_write();
"""
HOLDER_SQL = ("SELECT l.pid, host(a.client_addr), a.backend_start, clock_timestamp() "
              "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
              f"WHERE l.locktype = 'advisory' AND l.classid = {locks.NAMESPACE} AND l.objid = {locks.CYCLE} "
              "AND l.objsubid = 2 AND l.granted")
_ENDED = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) UTC \[(\d+)\] LOG:  disconnection:", re.M)


def cycle_loop(history: History, target: str, name: str, stop: threading.Event) -> None:
    """RunCycle again and again; an unknown answer is retried with the same token."""
    with OpsledgerClient(target, retries=0, timeout=60) as c:
        n = 0
        while not stop.is_set():
            n += 1
            token = f"{name}-cycle-{n}"
            for attempt in range(4):
                op = Op("cycle", token, name, time.monotonic())

                def call(token=token, op=op):
                    answer = c.run_cycle(timeout=60, idempotency_key=token)
                    op.request_id = answer.receipt.cycle_id
                    return answer

                history.call(op, call)
                if op.outcome != "unknown" or stop.is_set():
                    break
                time.sleep(0.5 * (attempt + 1))


def _db_evidence(topo: Topology) -> tuple[dict[str, bytes], list[Write], dict[int, list[datetime]]]:
    with psycopg.connect(topo.local_url("opsledger")) as conn:
        stored = {p: bytes(b) for p, b in conn.execute("SELECT path, bytes FROM artifacts")}
        writes = [Write(*row) for row in conn.execute(
            "SELECT path, writer_addr, at, pg_xact_commit_timestamp(xmin), holder_pid, holder_addr, holder_start "
            "FROM torture_artifact_writes WHERE writer_addr IS NOT NULL")]
    ended: dict[int, list[datetime]] = {}
    for stamp, pid in _ENDED.findall(topo.cluster.logfile.read_text(errors="replace")):
        ended.setdefault(int(pid), []).append(datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC))
    return stored, writes, ended


def cycle_holder_cut(work: Path, cuts: int, long_s: float, short_s: float, bundle: Path) -> dict:
    """Two replicas run RunCycle in loops; each cut takes down the link of the replica
    seen holding the cycle lock (from pg_locks, outside), alternately long enough for
    PostgreSQL to end its session (the lock passes to the other replica) and short
    enough that the lock survives; then heals."""
    with Run(work, clients=0, settings=CYCLE_SETTINGS) as run:
        topo = run.topo
        subprocess.run(opsledger_cmd("bundle", "publish", "--store", topo.local_url("opsledger"), str(bundle)),
                       check=True, capture_output=True)
        with psycopg.connect(topo.local_url("opsledger"), autocommit=True) as watch:
            watch.execute(AUDIT_SQL)
            addrs = {topo.replica_addr(i): i for i in range(run.n_replicas)}
            cycles = History()
            loops = [threading.Thread(target=cycle_loop, daemon=True,
                                      args=(cycles, r.target, f"r{i}", run.stop)) for i, r in enumerate(run.replicas)]
            for t in loops:
                t.start()

            def holder() -> tuple[int, str, datetime, datetime] | None:
                """The replica session holding the cycle lock: pid, address, session start, database time."""
                row = watch.execute(HOLDER_SQL).fetchone()
                return (row[0], row[1], row[2], row[3]) if row and row[1] in addrs else None

            taken_over, recover = [], []
            held_at_cut = []  # (lock session, database time) of every cut that found the holder still holding
            for k in range(cuts):
                until = time.monotonic() + 60
                while (h := holder()) is None and time.monotonic() < until:
                    time.sleep(0.002)
                if h is None:
                    break
                pid, addr, started, _seen = h
                i = addrs[addr]
                at = topo.partition(i)
                after = holder()
                if after is not None and after[:3] == h[:3]:  # still holding as the link went down
                    held_at_cut.append(((pid, started), after[3]))
                down_s = long_s if k % 2 == 0 else short_s
                if k % 2 == 0:  # long: until the other replica holds the lock
                    until = at + 30
                    while ((h2 := holder()) is None or h2[1] == addr) and time.monotonic() < until:
                        time.sleep(0.01)
                    taken_over.append(round(time.monotonic() - at, 2) if h2 and h2[1] != addr else None)
                time.sleep(max(0.0, down_s - (time.monotonic() - at)))
                healed = topo.heal(i)
                recover.append(wait_health(run.replicas[i].target, SERVING, healed))
                time.sleep(1.0)
            run.stop.set()
            for t in loops:
                t.join(120)
        for r in run.replicas:  # every session ends (and is logged) before the log is read
            r.terminate(60)
        stored, writes, ended = _db_evidence(topo)
        violations = check_cycles(cycles.ops, stored, writes, ended)
        # Mid-cycle in the strict sense: the holder's receipt was not yet committed when its link went down.
        receipt_done = {(w.holder_pid, w.holder_start): w.committed for w in writes
                        if w.path.startswith(layout.kind("cycle").snapshot_dir + "/")}
        before_receipt = sum(1 for session, cut in held_at_cut
                             if session not in receipt_done or receipt_done[session] > cut)
        receipts = [p for p in stored if p.startswith(layout.kind("cycle").snapshot_dir + "/")]
        counts = cycles.counts()
        not_recorded = sum(op.reason == "CYCLE_NOT_RECORDED" for op in cycles.ops)
        spans = sorted(op.complete - op.invoke for op in cycles.ops if op.outcome == "ok")
        ok = not violations and len(taken_over) == (cuts + 1) // 2 and None not in taken_over + recover
        return {"scenario": f"the replica holding the cycle lock partitioned mid-cycle ({cuts} cuts), two replicas "
                            "running RunCycle in loops",
                "operations": len(cycles.ops), **counts, "violations": len(violations),
                "first_violations": violations[:5],
                "verdict": "pass" if ok and before_receipt > 0 else "FAIL",
                "detect_s": _worst(taken_over), "recover_s": _worst(recover),
                "longest_call_s": round(max((op.complete - op.invoke for op in cycles.ops), default=0.0), 2),
                "cuts": cuts, "cut_holding": len(held_at_cut), "cut_mid_cycle": before_receipt,
                "receipts": len(receipts), "not_recorded": not_recorded,
                "notes": (f"{len(held_at_cut)} of {cuts} cuts took down the replica while it held the cycle lock, "
                          f"{before_receipt} of them mid-cycle (its receipt not yet committed); "
                          f"{len(receipts)} receipts checked; {not_recorded} calls answered "
                          "CYCLE_NOT_RECORDED (the steps ran, the receipt was not written); "
                          f"median ok call {spans[len(spans) // 2] if spans else 0:.2f} s")}


MODES = {"full": dict(down_s=15.0, load_s=5.0, cycles=10, cuts=5, cycle_cuts=10),
         "short": dict(down_s=7.0, load_s=1.5, cycles=2, cuts=1, cycle_cuts=2)}
EXAMPLE_BUNDLE = Path(__file__).resolve().parents[1] / "examples" / "strategy_example.json"
LOST_HOLD_S = 7.0  # > TCP user timeout / keepalives (~2 s) + COMMIT_SETTLE_S (3 s)


def run_all(mode: str, work: Path, log=print, only: set[str] | None = None) -> list[dict]:
    m = MODES[mode]
    rows = []
    for name, fn in (("replica", lambda w: replica_partitioned(w, m["down_s"], m["load_s"])),
                     ("flapping", lambda w: flapping(w, m["cycles"], m["load_s"])),
                     ("database", lambda w: database_side(w, m["down_s"], m["load_s"])),
                     ("commit", lambda w: lost_replies(w, m["cuts"], LOST_HOLD_S, m["load_s"])),
                     ("cycle", lambda w: cycle_holder_cut(w, m["cycle_cuts"], 5.0, 1.0, EXAMPLE_BUNDLE))):
        if only and name not in only:
            continue
        (work / name).mkdir(parents=True)
        row = fn(work / name)
        log(json.dumps(row))
        rows.append(row)
    return rows


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m torture.partitions")
    ap.add_argument("--short", action="store_true")
    ap.add_argument("--only", action="append", help="run only this scenario (replica, flapping, database, commit, cycle)")
    ap.add_argument("--out", default="-", help="a RELIABILITY.md whose section 8 to replace with this run's table")
    args = ap.parse_args(argv)
    if args.only and args.out != "-":
        ap.error("--out writes the whole table: run every scenario (no --only)")
    with tempfile.TemporaryDirectory(prefix="opsledger-part-") as tmp:
        rows = run_all("short" if args.short else "full", Path(tmp), only=set(args.only or ()))
    if args.out != "-":
        page = Path(args.out).read_text(encoding="utf-8")
        head = page.split("\n## 8. Network partitions")[0].rstrip("\n") + "\n"
        when = f"full form, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC" if not args.short else ""
        Path(args.out).write_text(head + report(rows, when), encoding="utf-8")
    return 0 if all(r["verdict"] == "pass" for r in rows) else 1



def report(rows: list[dict], when: str = "") -> str:
    """Section 8 of docs/RELIABILITY.md (empty when the scenarios did not run)."""
    if not rows:
        return ""
    from opsledger.server.ledger.postgres import timeouts

    table = "\n".join(
        f"| {r['scenario']} | {r['operations']:,} | {r['ok']:,} / {r['refused']:,} / {r['unknown']:,} | "
        f"{r['verdict']} ({r['violations']} violations) | {r['detect_s']} | {r['recover_s']} | {r['longest_call_s']} |"
        for r in rows)
    notes = "\n".join(f"- {r['scenario']}: {r['notes']}." for r in rows if r.get("notes"))
    stamp = f" (this table: {when})" if when else ""
    return f"""
## 8. Network partitions (PostgreSQL store)

`torture/partitions.py`: PostgreSQL in its own network namespace, two `opsledger serve`
replicas each reaching it over its own veth pair (`torture/netns.py`); a partition is a link
set down (packets stop, nothing closes), healing sets it up. 8 clients (16 when flapping)
submit, consume and complete their own tickets through both replicas with a {CALL_TIMEOUT_S:.0f} s
deadline per call and no client retries except their own: a call that ends UNAVAILABLE,
INTERNAL or in a timeout is *unknown* and is retried with the same idempotency key. After
healing, the ledger is exported (`opsledger export`) and `torture/history.py` checks: every ok
submit, consume and complete is in the export (the consume with the processor that made it); no
ticket has two IN_PROGRESS or two terminal lines; a refused call left nothing; an idempotency
key has at most one ticket, and exactly the answered one when any attempt was ok; the board a
replica serves equals a replay of the export.

Two scenarios aim at one moment each:

- *A partition during batched commits*: a one-way cut (`Topology.drop_replies`: a blackhole
  route in the database's namespace drops every packet PostgreSQL sends to the replicas, while
  theirs still arrive). To make the cut land while COMMITs are in flight, the scenario installs
  a deferred constraint trigger on the two ledger tables in its own database (not part of the
  product) that takes a shared advisory lock at COMMIT time; the harness holds that lock
  exclusively, waits until a replica's COMMIT is seen waiting for it in `pg_locks`, drops the
  replies, and lets go: that COMMIT lands and its answer is lost. The cut lasts {LOST_HOLD_S:.0f} s
  (past the replica's TCP timeouts and its {timeouts.COMMIT_SETTLE_S} s of settling), so the replica answers
  INTERNAL `COMMIT_OUTCOME_UNKNOWN`; the client retries with the same key. The row fails unless
  at least one such call landed (its effect is in the export) and every one of them was then
  answered ok by a retry (the checker proves it is that one effect). Without the gate the same
  cut caught no COMMIT in flight (0 lost answers): the scenario would have proved nothing.
- *The replica holding the cycle lock partitioned mid-cycle*: two replicas run RunCycle in
  loops (an unknown answer retried with the same token); the harness watches `pg_locks` for the
  cycle lock's holder and takes that replica's link down at once, alternately for 5 s (PostgreSQL
  ends the holder's session and its lock passes to the other replica) and 1 s (the lock
  survives), then heals. The scenario's database records every artifact row written (a trigger:
  writer's address, the cycle lock's holder session at that moment), commit times
  (`track_commit_timestamp`) and when each session ended (`log_disconnections`). The checker
  (`check_cycles`) proves: every receipt is whole (the seed's keys, its integrity hash, every
  ref stored), one receipt per cycle id, every ok call's receipt stored and none for a call
  answered `CYCLE_NOT_RECORDED`; every row was written while the writer's own replica held the
  lock, a cycle's reports and receipt under one lock session, no receipt committed after its
  lock session ended, and no two cycles (first report .. receipt committed) overlap. With the
  lock check before each write removed, the same scenario fails (a receipt written by the cut
  replica after the other took the lock, overlapping its cycle).

`make torture` writes this section with the rest of the page; `python -m torture.partitions
--out docs/RELIABILITY.md` rewrites it alone{stamp}.

| scenario | operations | ok / refused / unknown | verdict | time to detect (s) | time to recover (s) \
| longest call (s) |
|---|---|---|---|---|---|---|
{table}

{notes}

Time to detect: from the link going down until the cut-off replica's health says
NOT_SERVING (worst replica); for the cycle-lock scenario, until the *other* replica holds the
cycle lock (the earliest moment a second cycle could start). Time to recover: from the link
coming up until it says SERVING.
Longest call: the slowest single call any client saw (a call on a replica
that is not cut off may wait for row locks the cut-off one held, until PostgreSQL drops that
session). The bounds come from the connection
settings in `server/ledger/postgres/timeouts.py` (TCP user timeout
{timeouts.TCP_USER_TIMEOUT_MS} ms, keepalives after {timeouts.KEEPALIVES_IDLE_S} s ×
{timeouts.KEEPALIVES_COUNT}, connect timeout {timeouts.CONNECT_TIMEOUT_S} s). Stated: a cut-off
replica reports NOT_SERVING, and a call that finds the link dead answers UNAVAILABLE, within
{timeouts.DETECT_BOUND_S} s; a call whose COMMIT was already sent when the link died first needs
that long to notice, then settles the outcome for up to {timeouts.COMMIT_SETTLE_S} s before it answers
`COMMIT_OUTCOME_UNKNOWN`, so it answers within {timeouts.DETECT_BOUND_S + timeouts.COMMIT_SETTLE_S} s
(the calls above 5 s in the table were under way when their link died). Before these settings,
the same "replica partitioned" scenario never turned
NOT_SERVING within 60 s and calls ran into the clients' 10 s deadline (Linux retransmits to a
silent peer for about 15 minutes).
"""


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
