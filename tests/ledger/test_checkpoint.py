"""The index checkpoint: checkpoint + tail == full replay, bad checkpoints, lost logs, the scrub.

Everything on real files; crashes are real SIGKILLs of real processes.
``OPSLEDGER_CHECKPOINT_EXAMPLES`` sets how many random workloads the
property test tries (``make torture`` runs the long form).
"""
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsledger.server.errors import IllegalTransition, InvalidArgument, NotFound
from opsledger.server.ledger.backend import ClaimNext, Submit, Transition
from opsledger.server.ledger.jsonl import checkpoint
from opsledger.server.ledger.jsonl.checkpoint import CHECKPOINT, LostLog
from opsledger.server.ledger.jsonl.fsck import fsck
from opsledger.server.ledger.jsonl.store import REQUESTS, RESULTS, CorruptLog, JsonlLedger
from opsledger.server.ledger.machine import Event
from opsledger.v1 import tickets_pb2 as pb
from tests.helpers import REPO, ServerProcess, opsledger_cmd

TYPES = [("ACKNOWLEDGE", lambda i: {"message_id": f"m{i}"}),
         ("REQUEST_LIVE_CYCLE", lambda i: {"reason": f"r{i}"}),
         ("REQUEST_RECONCILE", lambda i: {"mode": "FULL", "reason": f"x{i}"})]
EXAMPLES = int(os.environ.get("OPSLEDGER_CHECKPOINT_EXAMPLES", "40"))


# -- what a caller can see -----------------------------------------------------------
def seen(store: JsonlLedger) -> dict:
    """Board (every filter, walked in small pages), counts, every ticket's history,
    claim order, reaper's view, idempotency keys and skipped lines."""
    def walk(statuses=(), types=()):
        rows, before = [], None
        while True:
            page, before, total = store.page(statuses, types, 7, before)
            rows += page
            if before is None:
                return rows, total

    boards = {"all": walk()}
    for s in ("OPEN", "IN_PROGRESS", "DONE", "FAILED"):
        boards[s] = walk((s,))
    for t, _ in TYPES:
        boards[t] = walk((), (t,))
    boards["IN_PROGRESS+ACK"] = walk(("IN_PROGRESS", "DONE"), ("ACKNOWLEDGE",))
    tickets = {}
    for row in boards["all"][0]:
        view = store.ticket(row["request_id"])
        tickets[row["request_id"]] = (view.row, view.request, view.results)
    return {
        "boards": boards,
        "counts": store.counts(),
        "finished": store.finished_since(0),
        "stale": store.stale_in_progress(2**40, 10**6),
        "tickets": tickets,
        "claim_order": list(store.index.open_ids_in_order(())),
        "idempotency": dict(store.index.idempotency),
        "anomalies": [(a.file, a.line_no, a.reason) for a in store.anomalies()],
    }


def full_replay(root, tmp) -> dict:
    copy = tmp / f"full-{time.monotonic_ns()}"
    shutil.copytree(root, copy)
    (copy / CHECKPOINT).unlink(missing_ok=True)
    s = JsonlLedger(copy, scrub=False).open()
    try:
        return seen(s)
    finally:
        s.close(checkpoint=False)


def from_checkpoint(root) -> tuple[dict, bool]:
    s = JsonlLedger(root, scrub=False).open()
    try:
        return seen(s), s.loaded_from is not None
    finally:
        s.close(checkpoint=False)


# -- workloads -------------------------------------------------------------------------
def run_ops(store: JsonlLedger, ops: list, ids: list[str]) -> None:
    for op in ops:
        kind = op[0]
        try:
            if kind == "submit":
                t, payload = TYPES[op[1] % len(TYPES)]
                key = f"k{op[2]}" if op[2] is not None else None
                out = store.call(Submit(t, payload(op[2] or len(ids)), None, key))
                if out.appended:
                    ids.append(out.request["request_id"])
            elif kind in ("consume", "done", "failed") and ids:
                rid = ids[op[1] % len(ids)]
                event = {"consume": Event.CONSUME, "done": Event.COMPLETE_DONE, "failed": Event.COMPLETE_FAILED}[kind]
                store.call(Transition(rid, event, "w", kind))
            elif kind == "claim":
                store.call(ClaimNext(tuple(TYPES[i][0] for i in op[1]), "w", "claimed"))
            elif kind == "checkpoint":
                store.write_checkpoint()
        except (IllegalTransition, NotFound, InvalidArgument):
            pass  # a refusal writes nothing: part of the workload


OP = st.one_of(
    st.tuples(st.just("submit"), st.integers(0, 2), st.one_of(st.none(), st.integers(0, 5))),
    st.tuples(st.sampled_from(["consume", "done", "failed"]), st.integers(0, 60)),
    st.tuples(st.just("claim"), st.lists(st.integers(0, 2), max_size=2, unique=True)),
    st.just(("checkpoint",)),
)
CRASH = st.sampled_from(["clean", "kill", "torn-tail", "torn-checkpoint-temp", "torn-checkpoint", "no-checkpoint"])


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(before=st.lists(OP, max_size=40), after=st.lists(OP, max_size=25), crash=CRASH)
def test_checkpoint_plus_tail_equals_full_replay(tmp_path_factory, before, after, crash):
    tmp = tmp_path_factory.mktemp("prop")
    root = tmp / "root"
    ids: list[str] = []
    store = JsonlLedger(root, scrub=False).open()
    run_ops(store, before, ids)
    store.write_checkpoint()
    run_ops(store, after, ids)  # the tail: what came after the last checkpoint
    if crash == "clean":
        store.close()  # writes a checkpoint covering everything: the tail is empty
    else:
        store.close(checkpoint=False)  # as if killed: no checkpoint at stop
    if crash == "torn-tail":  # killed in the middle of an append
        with open(root / RESULTS, "ab") as f:
            f.write(b'{"schema":"TICKET_RESULT_V1","result_id":"')
    elif crash == "torn-checkpoint-temp":  # killed while writing the temp file of a checkpoint
        data = (root / CHECKPOINT).read_bytes()
        (root / CHECKPOINT).with_name(".index.checkpoint.0123.tmp").write_bytes(data[: len(data) // 2])
    elif crash == "torn-checkpoint":  # a checkpoint cut short in place (what the rename is there to prevent)
        data = (root / CHECKPOINT).read_bytes()
        (root / CHECKPOINT).write_bytes(data[: len(data) // 2])
    elif crash == "no-checkpoint":
        (root / CHECKPOINT).unlink()
    got, loaded = from_checkpoint(root)
    assert got == full_replay(root, tmp)
    assert loaded == (crash not in ("torn-checkpoint", "no-checkpoint"))


def _child_workload(root) -> list[str]:
    code = f"""
import random, sys
from opsledger.server.ledger.jsonl.store import JsonlLedger
from opsledger.server.ledger.backend import Submit, Transition, ClaimNext
from opsledger.server.ledger.machine import Event
s = JsonlLedger({str(root)!r}, scrub=False).open()
rnd = random.Random()
while True:
    rid = s.call(Submit("ACKNOWLEDGE", {{"message_id": "m"}}, None, None)).request["request_id"]
    s.call(ClaimNext((), "w", "c"))
    if rnd.random() < 0.7:
        try:
            s.call(Transition(rid, Event.COMPLETE_DONE, "w", "d"))
        except Exception:
            pass
    if rnd.random() < 0.3:
        s.write_checkpoint()
    print("tick", flush=True)
"""
    return [sys.executable, "-c", code]


@pytest.mark.slow
def test_sigkill_at_random_points_including_during_checkpoint_writes(tmp_path):
    root = tmp_path / "root"
    rnd = random.Random(16)
    rounds = int(os.environ.get("OPSLEDGER_CHECKPOINT_KILLS", "3"))
    loaded_rounds = 0
    for r in range(rounds):
        child = subprocess.Popen(_child_workload(root), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        child.stdout.readline()  # it is writing
        time.sleep(rnd.uniform(0.2, 1.2))
        child.send_signal(signal.SIGKILL)
        child.wait()
        got, loaded = from_checkpoint(root)
        loaded_rounds += loaded
        assert got == full_replay(root, tmp_path), f"round {r}"
        assert [str(f) for f in fsck(root) if f.severity == "error"] == []
    assert (root / CHECKPOINT).exists()
    assert loaded_rounds > 0  # checkpoint + tail was really compared with a full replay


# -- bad checkpoints: warned, ignored, full replay ---------------------------------------------
def _with_tickets(root, n=30):
    s = JsonlLedger(root, scrub=False).open()
    ids = [s.call(Submit("ACKNOWLEDGE", {"message_id": f"m{i}"}, None, None)).request["request_id"] for i in range(n)]
    for rid in ids[: n // 2]:
        s.call(Transition(rid, Event.CONSUME, "w", "c"))
    for rid in ids[: n // 4]:
        s.call(Transition(rid, Event.COMPLETE_DONE, "w", "d"))
    s.close()  # writes the checkpoint
    return ids


def _fix_checksum(data: bytes) -> bytes:
    import hashlib

    body = data[:-32]
    return body + hashlib.sha256(body).digest()


BAD = {
    "torn": lambda d: d[: len(d) // 2],
    "empty": lambda d: b"",
    "garbage": lambda d: os.urandom(len(d)),
    "byte flipped in the arrays": lambda d: d[:-100] + bytes([d[-100] ^ 0x40]) + d[-99:],
    "byte flipped in the header": lambda d: d[:40] + bytes([d[40] ^ 0x01]) + d[41:],
    "other version": lambda d: _fix_checksum(d.replace(b'"version":1', b'"version":9', 1)),
    "other byte order": lambda d: _fix_checksum(d.replace(
        b'"byteorder":"%s"' % sys.byteorder.encode(),
        b'"byteorder":"%s"' % (b"big" if sys.byteorder == "little" else b"little"), 1)),
    "columns disagree": lambda d: _fix_checksum(d.replace(b'"request_count":30', b'"request_count":31', 1)),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_checkpoint_is_ignored_with_a_warning_and_a_full_replay_runs(tmp_path, caplog, case):
    root = tmp_path / "root"
    _with_tickets(root)
    expected = full_replay(root, tmp_path)
    path = root / CHECKPOINT
    damaged = BAD[case](path.read_bytes())
    assert damaged != path.read_bytes()
    path.write_bytes(damaged)
    caplog.set_level("INFO")
    got, loaded = from_checkpoint(root)
    assert not loaded and got == expected
    assert any("index checkpoint not used" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    assert [f.severity for f in fsck(root) if f.file == CHECKPOINT] == ["note"]  # fsck says so, as a note


def test_a_missing_checkpoint_means_a_full_replay(tmp_path, caplog):
    root = tmp_path / "root"
    _with_tickets(root)
    expected = full_replay(root, tmp_path)
    (root / CHECKPOINT).unlink()
    caplog.set_level("DEBUG")
    got, loaded = from_checkpoint(root)
    assert not loaded and got == expected
    assert any("none written yet" in r.getMessage() for r in caplog.records)


# -- lost logs: start-up stops, --accept-log-loss, fsck ------------------------------------------
LOSSES = {
    "results truncated to zero": (RESULTS, lambda p: p.write_bytes(b"")),
    "results deleted": (RESULTS, lambda p: p.unlink()),
    "requests cut short": (REQUESTS, lambda p: os.truncate(p, p.stat().st_size // 2)),
    "results replaced by another file": (RESULTS, lambda p: shutil.copyfile(p.parent.parent.parent.parent / "other"
                                                                          / RESULTS, p)),
}


@pytest.mark.parametrize("case", sorted(LOSSES))
def test_a_log_that_lost_what_the_checkpoint_covered_stops_start_up(tmp_path, case):
    root = tmp_path / "root"
    _with_tickets(root)
    _with_tickets(tmp_path / "other", 40)  # another ledger, whose results log may take this one's place
    rel, damage = LOSSES[case]
    covered = (root / rel).stat().st_size
    damage(root / rel)
    now = (root / rel).stat().st_size if (root / rel).exists() else 0
    with pytest.raises(LostLog) as info:
        JsonlLedger(root).open()
    assert info.value.file == rel and info.value.covered == covered and info.value.size == now
    assert rel in str(info.value) and f"{covered} bytes" in str(info.value) and f"{now} bytes" in str(info.value)
    errors = [f for f in fsck(root) if f.severity == "error"]
    assert any(f.file == rel and "index checkpoint covered" in f.reason for f in errors)
    # the operator goes on knowingly: the logs as they are, and the next start does not stop again
    s = JsonlLedger(root, accept_log_loss=True).open()
    counts = s.counts()
    s.close()
    assert JsonlLedger(root).open().close() is None
    if case == "results truncated to zero":
        assert counts == {"OPEN": 30, "IN_PROGRESS": 0, "DONE": 0, "FAILED": 0}
    assert list(root.glob("state/tickets/index.checkpoint.log-loss-accepted-*"))


def test_serve_and_fsck_name_a_lost_log_in_one_line(tmp_path):
    root = tmp_path / "root"
    _with_tickets(root)
    covered = (root / RESULTS).stat().st_size
    (root / RESULTS).write_bytes(b"")
    proc = subprocess.run(opsledger_cmd("serve", "--root", str(root), "--grpc-addr", "127.0.0.1:0", "--no-http"),
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: state/tickets/ticket_results.jsonl") and f"{covered} bytes" in last
    assert "0 bytes" in last and "--accept-log-loss" in last and "Traceback" not in proc.stderr
    proc = subprocess.run(opsledger_cmd("fsck", "--root", str(root)), cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1 and "ERROR state/tickets/ticket_results.jsonl" in proc.stdout


@pytest.mark.parametrize("line", [3, 58])  # inside the hashed head / the bytes before the cut
def test_a_line_rewritten_in_place_near_the_edges_stops_start_up_naming_it(tmp_path, line):
    """(A rewrite in the middle, away from the edges, is the scrub's to find: see below.)"""
    root = tmp_path / "root"
    _with_tickets(root, 60)
    lines = (root / REQUESTS).read_bytes().splitlines(keepends=True)
    i = line - 1
    lines[i] = lines[i].replace(b'"message_id":"m%d"' % i, b'"message_id":"m%dX"' % i)
    (root / REQUESTS).write_bytes(b"".join(lines))
    with pytest.raises(LostLog) as info:
        JsonlLedger(root).open()
    assert info.value.line == line and info.value.rewritten
    assert f"{REQUESTS}:{line}" in str(info.value)
    assert any(f.file == REQUESTS and f.line == line for f in fsck(root) if f.severity == "error")


# -- the scrub -----------------------------------------------------------------------------------
def _flip_inside(root, rel, line_index, needle=b'"w"'):
    """A letter changed inside a string of a covered line, away from the hashed edges: still parses."""
    path = root / rel
    data = bytearray(path.read_bytes())
    lines = bytes(data).splitlines(keepends=True)
    at = sum(len(x) for x in lines[:line_index]) + lines[line_index].index(needle) + 2
    data[at] ^= 0x20  # upper <-> lower case
    path.write_bytes(bytes(data))
    assert checkpoint.EDGE < at < len(data) - checkpoint.EDGE


def _wait(cond, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_the_scrub_finds_a_byte_flipped_in_the_checkpointed_prefix(tmp_path):
    root = tmp_path / "root"
    _with_tickets(root, 200)
    _flip_inside(root, RESULTS, 60)
    s = JsonlLedger(root).open()  # the edges match: start-up trusts the checkpoint ...
    try:
        assert s.loaded_from is not None
        assert _wait(lambda: s.scrub_progress()["state"] in ("failed", "done"))
        assert s.scrub_progress()["state"] == "failed"  # ... and the scrub finds the line
        assert isinstance(s.failed, CorruptLog)
        assert s.failed.path == root / RESULTS and s.failed.line_no == 61
        assert "state/tickets/ticket_results.jsonl:61" in s.scrub_progress()["finding"]
        with pytest.raises(Exception) as info:
            s.call(Submit("ACKNOWLEDGE", {"message_id": "x"}, None, None))
        assert "read-only" in str(info.value)
        assert s.counts()["DONE"] == 50  # reads still answer
    finally:
        s.close()
    assert not (root / CHECKPOINT).exists()  # set aside: the next start reads every line
    assert list(root.glob("state/tickets/index.checkpoint.scrub-mismatch-*"))


def test_scrub_failure_shows_in_health_and_metrics_on_a_running_server(tmp_path):
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    root = tmp_path / "root"
    _with_tickets(root, 200)
    _flip_inside(root, REQUESTS, 100, b'"ACKNOWLEDGE"')
    srv = ServerProcess(root)
    try:
        assert _wait(lambda: "scrub" in srv.log() and "ticket_requests.jsonl:101" in srv.log())
        with grpc.insecure_channel(srv.target) as ch:
            status = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
        import urllib.request

        metrics = urllib.request.urlopen(srv.http_base + "/metrics", timeout=5).read().decode()
        assert 'opsledger_scrub_state{state="failed"} 1.0' in metrics
        assert "opsledger_store_read_only 1.0" in metrics
    finally:
        srv.terminate()


def test_a_clean_scrub_reports_progress(tmp_path, caplog):
    root = tmp_path / "root"
    _with_tickets(root, 100)
    caplog.set_level("INFO")
    s = JsonlLedger(root).open()
    try:
        assert _wait(lambda: s.scrub_progress()["state"] == "done")
        p = s.scrub_progress()
        total = (root / REQUESTS).stat().st_size + (root / RESULTS).stat().st_size
        assert p["bytes_total"] == p["bytes_done"] == total and s.failed is None
    finally:
        s.close()
    assert any("scrub done" in r.getMessage() for r in caplog.records)


def test_a_server_store_scrubs_only_once_told_to_and_stops_cleanly_if_never_told(tmp_path):
    """The server opens the store with scrub_when_told and starts the scrub once it
    reports SERVING, so the scrub does not compete with start-up."""
    root = tmp_path / "root"
    _with_tickets(root, 100)
    s = JsonlLedger(root, scrub_when_told=True).open()
    try:
        time.sleep(0.3)  # room for a scrub that would (wrongly) run already
        assert (s.scrub_progress()["state"], s.scrub_progress()["bytes_done"]) == ("none", 0)
        s.start_scrub()
        assert _wait(lambda: s.scrub_progress()["state"] == "done")
        assert s.scrub_progress()["bytes_done"] == (root / REQUESTS).stat().st_size + (root / RESULTS).stat().st_size
    finally:
        s.close()
    s = JsonlLedger(root, scrub_when_told=True).open()
    s.close()  # never told: the waiting scrub ends with the store
    assert s.scrub_progress()["state"] == "stopped"


# -- other processes and the CLI -------------------------------------------------------------------
def test_another_process_appending_after_the_checkpoint_is_picked_up(tmp_path):
    root = tmp_path / "root"
    _with_tickets(root)
    code = f"""
from opsledger.server.ledger.jsonl.store import JsonlLedger
from opsledger.server.ledger.backend import Submit, Transition
from opsledger.server.ledger.machine import Event
s = JsonlLedger({str(root)!r}, scrub=False).open()
for i in range(25):
    rid = s.call(Submit("REQUEST_LIVE_CYCLE", {{"reason": f"other {{i}}"}}, None, None)).request["request_id"]
    s.call(Transition(rid, Event.CONSUME, "other", "c"))
s.close(checkpoint=False)
"""
    before = (root / CHECKPOINT).read_bytes()
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)
    assert (root / CHECKPOINT).read_bytes() == before  # the old checkpoint; the other process's lines are a tail
    got, loaded = from_checkpoint(root)
    assert loaded and got == full_replay(root, tmp_path)
    assert got["counts"]["IN_PROGRESS"] == 8 + 25


def test_checkpoint_command_offline_and_on_a_running_server(tmp_path):
    root = tmp_path / "root"
    ids = _with_tickets(root)
    (root / CHECKPOINT).unlink()
    out = subprocess.run(opsledger_cmd("checkpoint", "--root", str(root)), cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("checkpoint written: 30 tickets")
    assert (root / CHECKPOINT).exists()
    srv = ServerProcess(root, http=False)
    try:
        from opsledger.client.ledger_client import OpsledgerClient

        with OpsledgerClient(srv.target, retries=0, timeout=10) as c:
            for rid in ids[15:20]:
                c.consume(rid, "w2")
        out = subprocess.run(opsledger_cmd("checkpoint", "--root", str(root)), cwd=REPO, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        header, _ = checkpoint.read(root / CHECKPOINT)
        assert header["logs"][RESULTS]["lines"] == 15 + 7 + 5  # the server's five consumes are covered
        srv.kill()  # no checkpoint at stop: the one the command wrote is what the next start uses
    finally:
        srv.terminate() if srv.proc.poll() is None else None
    srv = ServerProcess(root, http=False)
    try:
        assert "index checkpoint of" in srv.log() and "loaded" in srv.log()
        with OpsledgerClient(srv.target, retries=0, timeout=10) as c:
            assert c.board().total_count == 30
            assert c.ticket(ids[17]).row.current_status == pb.TicketStatus.IN_PROGRESS
    finally:
        srv.terminate()
    report = subprocess.run(opsledger_cmd("fsck", "--root", str(root)), cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert report.returncode == 0 and "NOTE state/tickets/index.checkpoint: valid (version 1" in report.stdout


def test_checkpoint_lines_are_what_the_store_wrote(tmp_path):
    """The header's positions are whole lines of the logs, and the CRCs are those lines'."""
    import zlib

    root = tmp_path / "root"
    _with_tickets(root)
    header, arrays = checkpoint.read(root / CHECKPOINT)
    for rel in (REQUESTS, RESULTS):
        data = (root / rel).read_bytes()
        mark = header["logs"][rel]
        assert mark["size"] == len(data) and mark["lines"] == data.count(b"\n")
        assert list(arrays[f"crc.{rel}"]) == [zlib.crc32(x) for x in data.splitlines()]
    assert orjson.loads(orjson.dumps(header))["index"]["request_count"] == 30
