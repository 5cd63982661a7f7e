"""Real subprocess servers: SIGKILL under load, two servers on one root."""
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import orjson

from opsledger.client.ledger_client import OpsledgerClient
from opsledger.server.ledger.jsonl.fsck import fsck
from opsledger.server.ledger.jsonl.store import REQUESTS, RESULTS
from opsledger.v1 import tickets_pb2 as pb
from tests.helpers import ServerProcess


def test_sigkill_loses_no_acknowledged_completion(root):
    srv = ServerProcess(root)
    with OpsledgerClient(srv.target, retries=0, timeout=5) as c:
        ids = [c.submit("ACKNOWLEDGE", {"message_id": f"m{i}"}).request_id for i in range(400)]
        for rid in ids:
            c.consume(rid, "w")
    acked: dict[str, str] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def worker(chunk):
        with OpsledgerClient(srv.target, retries=0, timeout=5) as c:
            for rid in chunk:
                if stop.is_set():
                    return
                try:
                    resp = c.complete(rid, "DONE", "w", "done")
                except grpc.RpcError:
                    return  # the server died under us: this one was not acknowledged
                with lock:
                    acked[rid] = resp.result_id

    threads = [threading.Thread(target=worker, args=(ids[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    while len(acked) < 120:
        time.sleep(0.005)
    srv.kill()
    stop.set()
    for t in threads:
        t.join()
    assert 120 <= len(acked) < 400
    logged = {}
    for line in (root / RESULTS).read_bytes().splitlines():
        rec = orjson.loads(line)
        if rec["status"] == "DONE":
            logged[rec["request_id"]] = rec["result_id"]
    for rid, result_id in acked.items():
        assert logged.get(rid) == result_id
    srv2 = ServerProcess(root)
    try:
        with OpsledgerClient(srv2.target, retries=0, timeout=5) as c:
            board = {r.request_id: r for r in c.board(page_size=1000).rows}
        for rid in acked:
            assert board[rid].current_status == 3  # DONE
    finally:
        assert srv2.terminate() == 0
    assert [f for f in fsck(root) if f.severity == "error"] == []


def test_two_servers_one_root_each_ticket_consumed_exactly_once(root):
    a = ServerProcess(root)
    b = ServerProcess(root)
    try:
        with OpsledgerClient(a.target, retries=0) as c:
            ids = [c.submit("REQUEST_LIVE_CYCLE", {"reason": f"r{i}"}).request_id for i in range(300)]
        wins: dict[str, list[str]] = {rid: [] for rid in ids}
        refused = []
        lock = threading.Lock()

        def racer(n):
            order = ids[:]
            random.Random(n).shuffle(order)
            targets = [a.target, b.target]
            clients = [OpsledgerClient(t, retries=0) for t in targets]
            for i, rid in enumerate(order):
                try:
                    clients[(i + n) % 2].consume(rid, f"racer-{n}")
                    with lock:
                        wins[rid].append(f"racer-{n}")
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION, exc
                    with lock:
                        refused.append(rid)
            for c in clients:
                c.close()

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(racer, range(8)))
        assert all(len(w) == 1 for w in wins.values()), [r for r, w in wins.items() if len(w) != 1]
        assert len(refused) == 300 * 7
        # both servers see every ticket IN_PROGRESS
        for target in (a.target, b.target):
            with OpsledgerClient(target, retries=0) as c:
                assert c.board(statuses=["IN_PROGRESS"]).total_count == 300
    finally:
        assert a.terminate() == 0
        assert b.terminate() == 0
    for rel in (REQUESTS, RESULTS):
        for line in (root / rel).read_bytes().splitlines():
            orjson.loads(line)
    assert len((root / RESULTS).read_bytes().splitlines()) == 300
    assert fsck(root) == []


def _long_polls_in_progress(srv) -> int:
    text = httpx.get(srv.http_base + "/metrics", timeout=5).text
    m = re.search(r'opsledger_calls_in_progress{budget="long-polls"} (\S+)', text)
    return int(float(m.group(1))) if m else 0


def test_a_waiter_is_woken_by_another_process_submit_that_a_read_took_in_first(root):
    """A submit on B, then a board read on A: the read's catch-up takes B's line in before
    the waiter's own once-a-second look, and must wake the waiter itself."""
    a = ServerProcess(root)
    b = ServerProcess(root)
    waiter = None
    try:
        with OpsledgerClient(a.target, retries=0, timeout=10) as ca, \
                OpsledgerClient(b.target, retries=0, timeout=10) as cb:
            # No deadline the server sees: a waiter nobody wakes holds its whole 60 s (and
            # then claims), so giving up on it after 20 s fails the test on the result alone.
            waiter = ca.tickets.ConsumeNext.future(pb.ConsumeNextRequest(processor_id="w", wait_seconds=60))
            deadline = time.monotonic() + 20
            while _long_polls_in_progress(a) < 1:
                assert time.monotonic() < deadline, "the long-poll never arrived"
                time.sleep(0.05)
            time.sleep(0.3)  # past its first (empty) claim attempt: parked in the wait
            rid = cb.submit("ACKNOWLEDGE", {"message_id": "from-b"}).request_id
            assert ca.board().total_count == 1  # A's read catches up on B's line
            got = waiter.result(timeout=20)  # grpc.FutureTimeoutError: the waiter slept on
            assert got.claimed and got.request_id == rid
    finally:
        if waiter is not None:
            waiter.cancel()
        assert a.terminate() == 0
        assert b.terminate() == 0
