"""WatchTickets across PostgreSQL replicas, end to end: real server processes on
one database, writers on both, a watcher on one, a resume on the other."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from opsledger.client.ledger_client import OpsledgerClient
from opsledger.server.ledger.postgres.transfer import export_to
from tests.helpers import ServerProcess
from tests.ledger.test_watch import PROGRESS, check_equals_logs, collect, record_of, workload

pytestmark = pytest.mark.slow

SENTINEL = "after-the-workload"


def test_a_watcher_on_one_replica_sees_every_replicas_commits_and_resumes_on_another(tmp_path, pg_url):
    """The mixed workload of 5,000 calls from 8 clients (4 on each replica) while a watcher
    on replica A follows from the beginning: what it saw is the export's two logs in log
    order; replica B serves the same order and revisions, from any revision A gave."""
    a = ServerProcess(tmp_path / "a", "--store", pg_url, http=False, log_level="WARNING")
    b = ServerProcess(tmp_path / "b", "--store", pg_url, http=False, log_level="WARNING")
    try:
        with OpsledgerClient(a.target, retries=0, timeout=60) as ca, \
                OpsledgerClient(b.target, retries=0, timeout=60) as cb:
            seen: list = []
            ready = threading.Event()

            def follow():
                for event in ca.watch(from_beginning=True, progress=True):
                    if event.kind == PROGRESS:
                        ready.set()
                        continue
                    seen.append(event)
                    payload = event.request.payload
                    if event.WhichOneof("record") == "request" and payload.fields.get("message_id") \
                            and payload["message_id"] == SENTINEL:
                        return

            watcher = threading.Thread(target=follow, daemon=True)
            watcher.start()
            assert ready.wait(30)
            pool = ThreadPoolExecutor(2)
            try:  # a writer's failure is raised here, not lost in its thread
                for done in [pool.submit(workload, srv.target, 2500, clients=4) for srv in (a, b)]:
                    done.result(300)
            finally:
                pool.shutdown(wait=False, cancel_futures=True)  # a stuck writer does not hold the test past its bound
            cb.submit("ACKNOWLEDGE", {"message_id": SENTINEL})  # the last event, committed on B
            watcher.join(60)
            assert not watcher.is_alive(), f"the watcher on A stopped at {len(seen)} events"
            total = len(seen)
            half = total // 2
            rest = collect(cb, total - half, after=seen[half - 1].revision)
            assert [(e.revision, record_of(e)) for e in rest] == [(e.revision, record_of(e)) for e in seen[half:]]
            assert [e.revision for e in collect(cb, total, from_beginning=True)] == [e.revision for e in seen]
        # What was watched is the ledger as stored: the export's two logs, in log order.
        export_to(pg_url, tmp_path / "export")
        check_equals_logs(seen, tmp_path / "export")
    finally:
        for srv in (a, b):
            assert srv.terminate() == 0
