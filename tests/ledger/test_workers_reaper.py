"""ConsumeNext long-poll, worker processes, the reaper (issue: workers and reaper)."""
import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime

import grpc
import orjson
import pytest

from opsledger.client.ledger_client import OpsledgerClient
from opsledger.server.common.clock import FixedClock
from opsledger.server.ledger.jsonl.fsck import fsck
from opsledger.server.ledger.jsonl.store import RESULTS
from tests.cycle.conftest import write_bundle
from tests.helpers import REPO, ServerProcess, ServerThread, opsledger_cmd

TYPES = [("ACKNOWLEDGE", {"message_id": "m"}), ("REQUEST_RECONCILE", {"mode": "FULL", "reason": "r"}),
         ("REQUEST_REPORTS", {"mode": "REGEN", "scope": "PHASE_C_LATEST", "reason": "r"}),
         ("REQUEST_LIVE_CYCLE", {"reason": "r"})]


def results_by_ticket(root):
    out = {}
    for line in (root / RESULTS).read_bytes().splitlines():
        rec = orjson.loads(line)
        out.setdefault(rec["request_id"], []).append(rec)
    return out


def test_four_worker_processes_500_mixed_tickets_each_done_once(root):
    root.mkdir(parents=True)
    write_bundle(root)
    srv = ServerProcess(root)
    try:
        with OpsledgerClient(srv.target) as c:
            ids = []
            for i in range(500):
                rtype, payload = TYPES[3] if i % 25 == 0 else TYPES[i % 3]
                ids.append(c.submit(rtype, payload).request_id)
        workers = [subprocess.Popen(opsledger_cmd("worker", "--target", srv.target, "--processor", f"w{n}",
                                                  "--wait", "1"),
                                    cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                   for n in range(4)]
        with OpsledgerClient(srv.target) as c:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if c.board(statuses=["OPEN", "IN_PROGRESS"]).total_count == 0:
                    break
                time.sleep(0.2)
        counts = []
        for w in workers:
            w.send_signal(signal.SIGTERM)
            out, _ = w.communicate(timeout=30)
            assert w.returncode == 0
            counts.append(int(out.strip().splitlines()[-1].split("handled ")[1].split()[0]))
    finally:
        assert srv.terminate() == 0
    assert sum(counts) == 500 and all(n > 0 for n in counts), counts
    per = results_by_ticket(root)
    assert set(per) == set(ids)
    for recs in per.values():
        assert [r["status"] for r in recs][0] == "IN_PROGRESS" and len(recs) == 2
        assert recs[1]["status"] == "DONE" and recs[0]["processor_id"] == recs[1]["processor_id"]
    live = [recs[1] for recs in per.values() if recs[1]["message"].startswith("live cycle")]
    assert len(live) == 20 and all(r["artifacts"][0].startswith("reports/live/cycle/snapshots/") for r in live)
    assert all(recs[1]["message"].startswith("[MOCK_ONLY] Simulated ") for recs in per.values()
               if not recs[1]["message"].startswith("live cycle"))
    assert fsck(root) == []


def test_long_poll_is_woken_by_a_submission(server, client):
    def submit_later():
        time.sleep(0.5)
        with OpsledgerClient(server.target) as c:
            c.submit("ACKNOWLEDGE", {"message_id": "late"})

    threading.Thread(target=submit_later).start()
    started = time.monotonic()
    reply = client.consume_next("w1", wait_seconds=10)
    elapsed = time.monotonic() - started
    assert reply.claimed and reply.ticket.payload["message_id"] == "late"
    assert elapsed < 5, elapsed  # woken by the submission, not by the end of the wait
    assert reply.new_status == 2 and reply.ticket.current_status == 2
    assert reply.ticket == client.ticket(reply.request_id).row  # the row built from the claim is the board's


def test_type_filter_leaves_other_types_open(server, client):
    other = client.submit("REQUEST_RECONCILE", {"mode": "FULL", "reason": "r"}).request_id

    def submit_later():
        time.sleep(0.3)
        with OpsledgerClient(server.target) as c:
            c.submit("REQUEST_RECONCILE", {"mode": "FULL", "reason": "again"})
            time.sleep(0.3)
            c.submit("ACKNOWLEDGE", {"message_id": "mine"})

    threading.Thread(target=submit_later).start()
    reply = client.consume_next("w1", types=["ACKNOWLEDGE"], wait_seconds=10)
    assert reply.claimed and reply.ticket.request_type == 3  # ACKNOWLEDGE
    assert client.board(statuses=["OPEN"], types=["REQUEST_RECONCILE"]).total_count == 2
    assert client.ticket(other).row.current_status == 1  # still OPEN


def test_empty_wait_answers_not_claimed(client):
    reply = client.consume_next("w1", wait_seconds=0.2)
    assert not reply.claimed and reply.result == "EMPTY" and reply.request_id == ""


def test_oldest_open_first(client):
    ids = [client.submit("ACKNOWLEDGE", {"message_id": f"m{i}"}).request_id for i in range(5)]
    client.consume(ids[1])
    got = [client.consume_next("w").request_id for _ in range(4)]
    assert got == [ids[0], ids[2], ids[3], ids[4]]


def test_a_cancelled_consume_next_claims_nothing(server, client):
    future = client.consume_next_future("w1", wait_seconds=10)
    time.sleep(0.3)
    future.cancel()
    time.sleep(0.3)
    rid = client.submit("ACKNOWLEDGE", {"message_id": "m"}).request_id
    time.sleep(0.5)
    assert client.ticket(rid).row.current_status == 1  # OPEN


def test_wait_seconds_rule(client):
    with pytest.raises(grpc.RpcError) as info:
        client.consume_next("w", wait_seconds=61)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "wait_seconds" in info.value.details()


@pytest.fixture
def clocked(root):
    clock = FixedClock(datetime(2026, 3, 2, 9, 0, 0).astimezone())
    srv = ServerThread(root, clock=clock).start()
    srv.clock = clock
    yield srv
    srv.stop()


def test_reaper_threshold_max_clean_and_dry_run(clocked, root):
    with OpsledgerClient(clocked.target) as c:
        old = [c.submit("ACKNOWLEDGE", {"message_id": f"o{i}"}).request_id for i in range(3)]
        for rid in old:
            c.consume(rid, "w-old")
        clocked.clock.advance(50_000)
        new = [c.submit("ACKNOWLEDGE", {"message_id": f"n{i}"}).request_id for i in range(2)]
        for rid in new:
            c.consume(rid, "w-new")
        clocked.clock.advance(40_000)  # old ones are 90,000 s in progress, new ones 40,000 s
        before = (root / RESULTS).read_bytes()
        dry = c.reap(dry_run=True)
        assert (root / RESULTS).read_bytes() == before
        assert not dry.HasField("snapshot_ref")
        assert dry.report.stale_count == 3 and dry.report.cleaned_count == 0
        assert not (root / "reports/ops/tickets/reaper/latest/reaper_latest.json").exists()
        run = c.reap(max_clean=2)
        assert run.report.stale_count == 3 and run.report.cleaned_count == 2
        assert [i.request_id for i in run.report.cleaned_items] == old[:2]
        assert run.report.decision == 2  # CLEANED
        latest = json.loads((root / "reports/ops/tickets/reaper/latest/reaper_latest.json").read_bytes())
        assert latest == json.loads((root / run.snapshot_ref).read_bytes())
        assert list(latest) == ["schema", "asof", "decision", "threshold_seconds", "stale_count", "cleaned_count",
                                "cleaned_items", "evidence_refs"]
        assert latest["cleaned_items"][0]["reason"] == "AUTO_CLEANUP_STALE_IN_PROGRESS: exceeded 86400s threshold"
        run = c.reap()
        assert [i.request_id for i in run.report.cleaned_items] == old[2:]
        for rid in old:
            t = c.ticket(rid)
            assert t.results[-1].processor_id == "TICKET_REAPER" and t.row.current_status == 4  # FAILED
        for rid in new:
            assert c.ticket(rid).row.current_status == 2  # untouched
        with pytest.raises(grpc.RpcError) as info:  # a worker finishing late is refused
            c.complete(old[0], "DONE", "w-old")
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_reaper_racing_a_late_complete_leaves_one_terminal_line(clocked, root):
    with OpsledgerClient(clocked.target) as c:
        ids = [c.submit("ACKNOWLEDGE", {"message_id": f"m{i}"}).request_id for i in range(40)]
        for rid in ids:
            c.consume(rid, "w")
        clocked.clock.advance(90_000)
        outcomes = Counter()

        def completer():
            with OpsledgerClient(clocked.target) as cc:
                for rid in ids:
                    try:
                        cc.complete(rid, "DONE", "w")
                        outcomes["worker"] += 1
                    except grpc.RpcError as exc:
                        assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION
                        outcomes["refused"] += 1

        t = threading.Thread(target=completer)
        t.start()
        reaped = c.reap(max_clean=40).report.cleaned_count
        t.join()
    per = results_by_ticket(root)
    for rid in ids:
        terminal = [r for r in per[rid] if r["status"] in ("DONE", "FAILED")]
        assert len(terminal) == 1
    assert reaped + outcomes["worker"] == 40 and outcomes["refused"] == reaped


SLOW_WORKER = """
import sys, time
from opsledger.client.ledger_client import OpsledgerClient
from opsledger.client.worker import Outcome, Worker
def slow(ticket, client):
    print("HANDLING", ticket["request_id"], flush=True)
    time.sleep(60)
    return Outcome("DONE", "never")
with OpsledgerClient(sys.argv[1]) as c:
    Worker(c, "w-dies", handlers={"ACKNOWLEDGE": slow}, wait_seconds=5).run(once=True)
"""


def test_worker_killed_mid_ticket_is_reaped_and_the_board_says_why(root):
    srv = ServerProcess(root)
    try:
        with OpsledgerClient(srv.target) as c:
            rid = c.submit("ACKNOWLEDGE", {"message_id": "m"}).request_id
            worker = subprocess.Popen([sys.executable, "-c", SLOW_WORKER, srv.target], cwd=REPO,
                                      stdout=subprocess.PIPE, text=True)
            assert worker.stdout.readline().split() == ["HANDLING", rid]
            worker.kill()
            worker.wait(10)
            assert c.ticket(rid).row.current_status == 2  # left IN_PROGRESS
            time.sleep(2.1)
            out = subprocess.run(opsledger_cmd("reap", "--target", srv.target, "--threshold", "1"), cwd=REPO,
                                 capture_output=True, text=True)
            assert out.returncode == 0, out.stderr
            row = c.board().rows[0]
            assert row.current_status == 4 and row.last_message == "AUTO_CLEANUP_STALE_IN_PROGRESS: exceeded 1s threshold"
    finally:
        assert srv.terminate() == 0


def test_cli_reaper_beside_a_running_server(root):
    srv = ServerProcess(root)
    try:
        with OpsledgerClient(srv.target) as c:
            rid = c.submit("ACKNOWLEDGE", {"message_id": "m"}).request_id
            c.consume(rid, "w")
            time.sleep(2.1)
            out = subprocess.run(opsledger_cmd("reap", "--local", "--root", str(root), "--threshold", "1"),
                                 cwd=REPO, capture_output=True, text=True)
            assert out.returncode == 0, out.stderr
            assert json.loads(out.stdout)["report"]["cleaned_count"] == 1
            with pytest.raises(grpc.RpcError) as info:  # the server sees the reaper's line
                c.complete(rid, "DONE", "w")
            assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        assert srv.terminate() == 0
    assert fsck(root) == []


LOOPING_WORKER = """
import sys, time
from opsledger.client.ledger_client import OpsledgerClient
from opsledger.client.worker import Outcome, Worker
def slow(ticket, client):
    print("HANDLING", ticket["request_id"], flush=True)
    time.sleep(1.5)
    return Outcome("DONE", "finished")
with OpsledgerClient(sys.argv[1]) as c:
    w = Worker(c, "w-term", handlers={"ACKNOWLEDGE": slow}, wait_seconds=5)
    w.install_signal_handlers()
    w.run()
"""


def test_worker_sigterm_finishes_the_ticket_in_hand(root):
    srv = ServerProcess(root)
    try:
        with OpsledgerClient(srv.target) as c:
            rid = c.submit("ACKNOWLEDGE", {"message_id": "m"}).request_id
            worker = subprocess.Popen([sys.executable, "-c", LOOPING_WORKER, srv.target], cwd=REPO,
                                      stdout=subprocess.PIPE, text=True)
            assert worker.stdout.readline().split() == ["HANDLING", rid]
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(20) == 0
            t = c.ticket(rid)
            assert t.row.current_status == 3 and t.row.last_message == "finished"
    finally:
        assert srv.terminate() == 0


def handles_sigterm(pid: int) -> bool:
    """Linux: the process has a SIGTERM handler (bit 15 of SigCgt in /proc)."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


def test_worker_sigterm_during_a_long_poll_exits_and_claims_nothing(root):
    srv = ServerProcess(root)
    try:
        worker = subprocess.Popen(opsledger_cmd("worker", "--target", srv.target, "--processor", "w-idle",
                                                "--wait", "30"), cwd=REPO, stdout=subprocess.PIPE, text=True)
        # SIGTERM only once the worker handles it (a loaded machine may take
        # longer than any fixed sleep to import and start), then let it poll.
        deadline = time.monotonic() + 60
        while not handles_sigterm(worker.pid):
            assert worker.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.0)  # now blocked in ConsumeNext
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(10) == 0
        with OpsledgerClient(srv.target) as c:
            rid = c.submit("ACKNOWLEDGE", {"message_id": "m"}).request_id
            time.sleep(0.5)
            assert c.ticket(rid).row.current_status == 1  # OPEN: the cancelled wait took nothing
    finally:
        assert srv.terminate() == 0
