"""Log files an operator (or an attacker) left in a strange state: a folder
where a log belongs, an append-only log with a torn tail, lines and inputs
with a repeated JSON key. Real files, real `opsledger` processes, real chattr."""
import json
import os
import subprocess

import orjson
import pytest

from opsledger.server.common.clock import Clock, iso
from opsledger.server.cycle.bundle import check_bundle, make_bundle
from opsledger.server.ledger.jsonl.files import REQUESTS, RESULTS
from tests.helpers import REPO, ServerProcess, opsledger_cmd

EXAMPLE = REPO / "examples" / "strategy_example.json"


def cli(*args, timeout=60):
    return subprocess.run(opsledger_cmd(*args), cwd=REPO, capture_output=True, text=True, timeout=timeout)


def no_traceback(proc):
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr


def ledger_with_one_consumed_ticket(root):
    srv = ServerProcess(root, http=False)
    try:
        from opsledger.client.ledger_client import OpsledgerClient

        with OpsledgerClient(srv.target, retries=0) as c:
            rid = c.submit("ACKNOWLEDGE", {"message_id": "m1"}).request_id
            c.consume(rid, "w1")
            later = c.submit("ACKNOWLEDGE", {"message_id": "m2"}).request_id
    finally:
        assert srv.terminate() == 0
    return rid, later


def test_fsck_reports_a_folder_where_a_log_belongs(root):
    (root / RESULTS).mkdir(parents=True)
    proc = cli("fsck", "--root", str(root))
    no_traceback(proc)
    assert proc.returncode == 1
    assert f"ERROR {RESULTS}: is a folder, not a log" in proc.stdout


@pytest.fixture
def append_only(root):
    """chattr +a on the requests log (needs CAP_LINUX_IMMUTABLE); always cleared again."""
    flagged = []

    def flag(path):
        subprocess.run(["chattr", "+a", str(path)], check=True)
        flagged.append(path)

    yield flag
    for path in flagged:
        subprocess.run(["chattr", "-a", str(path)], check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="chattr +a needs root (CAP_LINUX_IMMUTABLE)")
def test_torn_tail_of_an_append_only_log_leaves_no_copy_per_attempt(root, append_only):
    root.mkdir(parents=True)
    ledger_with_one_consumed_ticket(root)
    log = root / REQUESTS
    torn = b'{"schema":"TICKET_REQUEST_V1","request_id":"7f'
    with open(log, "ab") as f:
        f.write(torn)
    append_only(log)
    for _ in range(3):
        proc = cli("serve", "--root", str(root), "--grpc-addr", "127.0.0.1:0", "--no-http")
        no_traceback(proc)
        assert proc.returncode == 1 and "chattr -a" in proc.stderr and "cannot be cut" in proc.stderr
        assert sorted(log.parent.glob(log.name + ".torn-*")) == []  # no copy per attempt
    assert log.read_bytes().endswith(torn)  # and nothing cut
    subprocess.run(["chattr", "-a", str(log)], check=True)
    for _ in range(2):  # the fix named in the message works, once
        ServerProcess(root, http=False).terminate()
        [aside] = log.parent.glob(log.name + ".torn-*")
        assert aside.read_bytes() == torn and not log.read_bytes().endswith(torn)


def test_a_copy_left_by_an_interrupted_cut_is_reused(root):
    """A start-up that copied the tail aside and stopped before the cut (a
    kill) is followed by one that reuses that copy."""
    root.mkdir(parents=True)
    ledger_with_one_consumed_ticket(root)
    log = root / RESULTS
    torn = b'{"schema":"TICKET_RESULT_V1","result_id":"ab'
    with open(log, "ab") as f:
        f.write(torn)
    (log.parent / (log.name + ".torn-20260101_000000")).write_bytes(torn)
    ServerProcess(root, http=False).terminate()
    assert [p.name for p in log.parent.glob(log.name + ".torn-*")] == [log.name + ".torn-20260101_000000"]
    assert not log.read_bytes().endswith(torn)


def repeated_status_line(root) -> bytes:
    """The IN_PROGRESS result line with a second "status": last-wins parsers read DONE."""
    first = (root / RESULTS).read_bytes().splitlines()[0]
    assert b'"status":"IN_PROGRESS",' in first
    return first.replace(b'"status":"IN_PROGRESS",', b'"status":"IN_PROGRESS","status":"DONE",')


def test_a_log_line_with_a_repeated_key_is_refused_and_reported(root):
    root.mkdir(parents=True)
    rid, later = ledger_with_one_consumed_ticket(root)
    lines = (root / RESULTS).read_bytes().splitlines()
    doubled = repeated_status_line(root)
    assert orjson.loads(doubled)["status"] == "DONE"  # what a last-wins reader would believe
    # A middle line: start-up stops naming it (fail-closed), fsck reports it.
    (root / RESULTS).write_bytes(doubled + b"\n" + b"\n".join(lines[1:]) + b"\n" + lines[0] + b"\n")
    fsck = cli("fsck", "--root", str(root))
    assert fsck.returncode == 1 and f"{RESULTS}:1: not a record: duplicate key 'status'" in fsck.stdout
    serve = cli("serve", "--root", str(root), "--grpc-addr", "127.0.0.1:0", "--no-http")
    no_traceback(serve)
    assert serve.returncode == 1 and "ticket_results.jsonl:1: duplicate key 'status'" in serve.stderr


def test_requests_log_line_with_a_repeated_key_is_reported(root):
    root.mkdir(parents=True)
    ledger_with_one_consumed_ticket(root)
    lines = (root / REQUESTS).read_bytes().splitlines()
    rec = orjson.loads(lines[0])
    doubled = orjson.dumps(rec).replace(b'"payload":', b'"trace_id":"spoofed","payload":', 1)
    (root / REQUESTS).write_bytes(b"\n".join([doubled, *lines[1:]]) + b"\n")
    fsck = cli("fsck", "--root", str(root))
    assert fsck.returncode == 1 and "duplicate key 'trace_id'" in fsck.stdout


def test_bundle_with_a_repeated_key_fails_its_check(root):
    bundle = make_bundle(json.loads(EXAMPLE.read_text()), iso(Clock().now()), "b-1", None,
                         {"pc_host": "pc", "git_commit": None, "git_branch": None}, [])
    raw = json.dumps(bundle).replace('"schema": "STRATEGY_BUNDLE_V1"',
                                     '"schema": "STRATEGY_BUNDLE_V1", "schema": "STRATEGY_BUNDLE_V1"').encode()
    assert check_bundle(json.dumps(bundle).encode(), Clock().now()).decision == "PASS"
    check = check_bundle(raw, Clock().now())
    assert check.decision == "FAIL" and "duplicate key 'schema'" in check.error_text()


def test_cli_json_inputs_with_a_repeated_key_are_refused(root, tmp_path):
    root.mkdir(parents=True)
    strategy = tmp_path / "strategy.json"
    text = EXAMPLE.read_text()
    strategy.write_text(text.replace('"name"', '"name": "shadow", "name"', 1))
    publish = cli("bundle", "publish", "--root", str(root), str(strategy))
    no_traceback(publish)
    assert publish.returncode == 1 and "duplicate key 'name'" in publish.stderr
    assert not (root / "state").exists()
    submit = cli("submit", "--type", "ACKNOWLEDGE", "--payload", '{"message_id": "a", "message_id": "b"}',
                 "--target", "127.0.0.1:1")
    assert submit.returncode == 2 and "duplicate key 'message_id'" in submit.stderr
    receipt = tmp_path / "r.json"
    receipt.write_text('{"schema": "LIVE_CYCLE_RECEIPT_V1", "schema": "X"}')
    verify = cli("verify", "receipt", "--root", str(root), str(receipt))
    assert verify.returncode == 1 and "duplicate key 'schema'" in verify.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="chattr +a needs root (CAP_LINUX_IMMUTABLE)")
def test_a_failed_write_that_cannot_be_taken_back_is_not_unavailable(root, append_only):
    """fsync fails after the line was written, and the log is append-only, so the
    store cannot cut it off again: the caller must not hear "nothing happened"."""
    import errno

    import grpc
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    from opsledger.client.ledger_client import OpsledgerClient
    from tests.helpers import ServerThread

    srv = ServerThread(root).start()
    try:
        with OpsledgerClient(srv.target, retries=4) as c:
            c.sleep = lambda _s: None
            c.submit("ACKNOWLEDGE", {"message_id": "m0"})
            append_only(root / REQUESTS)

            def failing_sync(_fd):
                raise OSError(errno.EIO, "Input/output error")

            srv.app.store.sync = failing_sync
            with pytest.raises(grpc.RpcError) as info:
                c.submit("ACKNOWLEDGE", {"message_id": "m1"}, idempotency_key="retry-safe-key-1")
            assert info.value.code() == grpc.StatusCode.INTERNAL  # UNAVAILABLE would be retried
            [detail] = rpc_status.from_call(info.value).details
            error = error_details_pb2.ErrorInfo()
            detail.Unpack(error)
            assert error.reason == "OUTCOME_UNKNOWN" and "may be recorded" in info.value.details()
    finally:
        srv.stop()
    # It is indeed on disk: after a restart the ticket exists once.
    subprocess.run(["chattr", "-a", str(root / REQUESTS)], check=True)
    lines = [json.loads(line) for line in (root / REQUESTS).read_bytes().splitlines()]
    assert [rec["payload"]["message_id"] for rec in lines] == ["m0", "m1"]


@pytest.mark.skipif(os.geteuid() != 0, reason="chattr +a needs root (CAP_LINUX_IMMUTABLE)")
def test_a_read_whose_catch_up_shared_a_batch_that_could_not_be_taken_back_still_answers(root, append_only):
    """Another writer appended, so a board read first queues a catch-up; it joins the
    batch of a submit whose write fails and cannot be cut off again. The submit's caller
    hears "may be recorded"; the read answers from what the store holds."""
    import concurrent.futures
    import errno
    import time

    import grpc

    from opsledger.client.ledger_client import OpsledgerClient
    from opsledger.server.errors import OutcomeUnknown
    from opsledger.server.ledger.backend import Submit
    from opsledger.server.ledger.jsonl.store import JsonlLedger
    from tests.helpers import ServerThread

    srv = ServerThread(root).start()
    other = None
    try:
        store = srv.app.store
        with OpsledgerClient(srv.target, retries=0, timeout=30) as c:
            mine = c.submit("ACKNOWLEDGE", {"message_id": "m0"}).request_id
            other = JsonlLedger(root).open()  # a second writer on the same root
            theirs = other.call(Submit("ACKNOWLEDGE", {"message_id": "m1"}, None, None)).request["request_id"]
            append_only(root / REQUESTS)

            def failing_sync(_fd):
                raise OSError(errno.EIO, "Input/output error")

            store.sync = failing_sync

            def queue_empty_but(n):
                deadline = time.monotonic() + 20
                while store._queue.qsize() != n:
                    assert time.monotonic() < deadline, f"queue never reached {n}"
                    time.sleep(0.01)

            store._batch_lock.acquire()  # hold batches until both calls are queued for the same one
            try:
                doomed = store.execute(Submit("ACKNOWLEDGE", {"message_id": "m2"}, None, None))
                queue_empty_but(0)  # the writer holds it, waiting for the batch lock
                with concurrent.futures.ThreadPoolExecutor(1) as pool:
                    board = pool.submit(c.board)
                    queue_empty_but(1)  # the read's catch-up, queued behind it
                    store._batch_lock.release()
                    try:
                        rows = board.result(30)
                    except grpc.RpcError as exc:
                        pytest.fail(f"the read failed: {exc.code()} {exc.details()}")
            finally:
                if store._batch_lock.locked():
                    store._batch_lock.release()
            with pytest.raises(OutcomeUnknown):
                doomed.result(30)
            assert sorted(r.request_id for r in rows.rows) == sorted([mine, theirs])
            assert store.failed is not None
    finally:
        if other is not None:
            other.close()
        srv.stop()
