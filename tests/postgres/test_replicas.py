"""Several `opsledger serve` processes on one PostgreSQL database (real processes)."""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import orjson
import psycopg
import pytest
from grpc_health.v1 import health_pb2

from opsledger.client.ledger_client import OpsledgerClient
from opsledger.server.ledger.jsonl.fsck import fsck
from opsledger.server.ledger.postgres import migrate
from opsledger.server.ledger.postgres.transfer import export_to
from tests.helpers import ServerProcess, grpc_health, healthz
from tests.pg import PgCluster

pytestmark = pytest.mark.slow

SIGKILL_ROUNDS = int(os.environ.get("OPSLEDGER_PG_KILL_ROUNDS", "3"))  # torture runs 20


def _replicas(tmp_path, url: str, n: int) -> list[ServerProcess]:
    return [ServerProcess(tmp_path / f"replica{i}", "--store", url, log_level="WARNING") for i in range(n)]


def _stop(replicas) -> None:
    for r in replicas:
        if r.proc.poll() is None:
            r.terminate()
        else:
            r.proc.wait()


def _results(url: str) -> list[dict]:
    with psycopg.connect(url) as conn:
        return [orjson.loads(bytes(r[0])) for r in conn.execute("SELECT line FROM ticket_results ORDER BY seq")]


def test_three_replicas_racing_consumes_and_completes_one_winner_each(tmp_path, pg_url):
    replicas = _replicas(tmp_path, pg_url, 3)
    try:
        with OpsledgerClient(replicas[0].target, retries=0, timeout=10) as c:
            ids = [c.submit("ACKNOWLEDGE", {"message_id": f"m{i}"}).request_id for i in range(300)]

        def race(kind: str, n: int) -> list[str]:
            won = []
            with OpsledgerClient(replicas[n % 3].target, retries=0, timeout=30) as c:
                for rid in ids:
                    try:
                        if kind == "consume":
                            c.consume(rid, f"c{n}")
                        else:
                            c.complete(rid, "DONE" if n % 2 else "FAILED", f"c{n}", "end")
                        won.append(rid)
                    except grpc.RpcError as exc:
                        assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION, exc.details()
            return won

        for kind in ("consume", "complete"):
            with ThreadPoolExecutor(8) as pool:
                wins = [rid for won in pool.map(lambda n: race(kind, n), range(8)) for rid in won]
            assert sorted(wins) == sorted(ids), kind  # each ticket won exactly once
        results = _results(pg_url)
        for status_set in (("IN_PROGRESS",), ("DONE", "FAILED")):
            per_ticket = [r["request_id"] for r in results if r["status"] in status_set]
            assert sorted(per_ticket) == sorted(ids)
    finally:
        _stop(replicas)


def test_consume_next_waiting_on_one_replica_is_woken_by_a_submit_on_another(tmp_path, pg_url):
    a, b = _replicas(tmp_path, pg_url, 2)
    try:
        with OpsledgerClient(a.target, retries=0, timeout=10) as ca, OpsledgerClient(b.target, retries=0, timeout=10) as cb:
            for round_ in range(3):
                waiter = cb.consume_next_future(f"w{round_}", wait_seconds=20)
                time.sleep(0.3)  # the waiter is parked on B
                sub = ca.submit("ACKNOWLEDGE", {"message_id": f"x{round_}"}).request_id
                got = waiter.result(25)
                # Claimed through B (B is woken by NOTIFY, or finds it at its next poll; the NOTIFY
                # itself is checked by test_ledger_pg's announcement test).
                assert got.claimed and got.request_id == sub
    finally:
        _stop([a, b])


def test_sigkill_a_replica_under_load_loses_no_acknowledged_call(tmp_path, pg_url):
    survivor = ServerProcess(tmp_path / "survivor", "--store", pg_url, log_level="WARNING")
    acked: dict[str, str] = {}
    lock = threading.Lock()
    try:
        for round_ in range(SIGKILL_ROUNDS):
            victim = ServerProcess(tmp_path / f"victim{round_}", "--store", pg_url, log_level="WARNING")
            stop = threading.Event()

            def load(n: int) -> None:
                with OpsledgerClient(victim.target, retries=0, timeout=5) as c:
                    i = 0
                    while not stop.is_set():
                        try:
                            rid = c.submit("ACKNOWLEDGE", {"message_id": f"r{round_}-{n}-{i}"}, idempotency_key=f"r{round_}-{n}-{i}").request_id
                            res = c.consume(rid, "w").result_id
                        except grpc.RpcError:
                            return  # the replica died under us: not acknowledged
                        with lock:
                            acked[rid] = res
                        i += 1

            threads = [threading.Thread(target=load, args=(n,)) for n in range(8)]
            for t in threads:
                t.start()
            goal = len(acked) + 40
            deadline = time.monotonic() + 30
            try:
                while len(acked) < goal and time.monotonic() < deadline:
                    time.sleep(0.005)
                assert len(acked) >= goal, f"round {round_}: only {len(acked)} acknowledged before the kill"
            finally:
                victim.kill()  # also when the round failed: no server outlives the test
                stop.set()
                for t in threads:
                    t.join()
        with psycopg.connect(pg_url) as conn:
            stored = {str(rid): str(res) for rid, res in conn.execute(
                "SELECT request_id, last_result_id FROM tickets WHERE status = 'IN_PROGRESS'")}
        for rid, result_id in acked.items():
            assert stored.get(rid) == result_id
        # The survivor saw none of it go wrong and serves the lot.
        with OpsledgerClient(survivor.target, retries=0, timeout=10) as c:
            assert c.board(page_size=1).total_count >= len(acked)
        assert fsck_export_ok(tmp_path / "export", pg_url)
    finally:
        _stop([survivor])


def fsck_export_ok(folder, url) -> bool:
    export_to(url, folder)
    findings = [f for f in fsck(folder) if f.severity == "error"]
    assert findings == []
    return True


def test_database_crash_and_restart_under_load(tmp_path, request):
    """pg_ctl stop -m immediate under load: UNAVAILABLE/503 and NOT_SERVING while
    down, back on their own after the restart, nothing acknowledged lost."""
    cluster = PgCluster().start()
    try:
        url = cluster.create_database("crash")
        migrate.migrate(url, log=lambda _m: None)
        replicas = _replicas(tmp_path, url, 2)
        request.addfinalizer(lambda: _stop(replicas))
        acked: dict[str, str] = {}
        codes: set = set()
        lock = threading.Lock()
        stop = threading.Event()

        def load(n: int) -> None:
            with OpsledgerClient(replicas[n % 2].target, retries=0, timeout=5) as c:
                i = 0
                while not stop.is_set():
                    i += 1
                    try:
                        rid = c.submit("ACKNOWLEDGE", {"message_id": f"k{n}-{i}"}, idempotency_key=f"k{n}-{i}").request_id
                    except grpc.RpcError as exc:
                        with lock:
                            codes.add(exc.code())
                        time.sleep(0.05)
                        continue
                    with lock:
                        acked[rid] = f"k{n}-{i}"

        threads = [threading.Thread(target=load, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        try:
            while len(acked) < 100:
                time.sleep(0.01)
            cluster.stop("immediate")
            down_at = len(acked)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not all(
                    grpc_health(r.target) == health_pb2.HealthCheckResponse.NOT_SERVING for r in replicas):
                time.sleep(0.1)
            for r in replicas:
                assert grpc_health(r.target) == health_pb2.HealthCheckResponse.NOT_SERVING
                assert healthz(r.http_base) == 503
                with OpsledgerClient(r.target, retries=0, timeout=5) as c:
                    with pytest.raises(grpc.RpcError) as err:
                        c.submit("ACKNOWLEDGE", {"message_id": "down"})
                    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            time.sleep(0.5)
            cluster.start()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not (len(acked) > down_at + 50 and all(
                    grpc_health(r.target) == health_pb2.HealthCheckResponse.SERVING for r in replicas)):
                time.sleep(0.1)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert grpc.StatusCode.UNAVAILABLE in codes
        assert len(acked) > down_at + 50, (len(acked), down_at, codes)  # the replicas recovered on their own
        for r in replicas:
            assert healthz(r.http_base) == 200
        with psycopg.connect(url) as conn:
            stored = {str(rid) for (rid,) in conn.execute("SELECT request_id FROM ticket_requests")}
            n_tickets = conn.execute("SELECT count(*) FROM tickets").fetchone()[0]
            n_counted = conn.execute("SELECT sum(n) FROM ticket_counts").fetchone()[0]
        assert set(acked) <= stored
        assert n_tickets == len(stored) == n_counted  # nothing half-written
        _stop(replicas)
        assert fsck_export_ok(tmp_path / "export", url)
    finally:
        cluster.destroy()
