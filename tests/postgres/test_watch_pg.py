"""WatchTickets across PostgreSQL replicas, end to end: real server processes on
one database, writers on both, a watcher on one, a resume on the other."""
from __future__ import annotations

import threading

import pytest

from opsledger.client.ledger_client import OpsledgerClient
from opsledger.server.ledger.postgres.transfer import export_to
from tests.helpers import ServerProcess
from tests.ledger.test_watch import check_equals_logs, collect

pytestmark = pytest.mark.slow

TICKETS_PER_WRITER = 15  # each a submit, a claim and a completion: three events


def _write(target: str, name: str) -> None:
    with OpsledgerClient(target, retries=0, timeout=30) as c:
        for i in range(TICKETS_PER_WRITER):
            rid = c.submit("ACKNOWLEDGE", {"message_id": f"{name}-{i}"}).request_id
            c.consume(rid, name)
            c.complete(rid, "DONE" if i % 3 else "FAILED", name, "handled")


def test_a_watcher_on_one_replica_sees_every_replicas_commits_and_resumes_on_another(tmp_path, pg_url):
    a = ServerProcess(tmp_path / "a", "--store", pg_url, http=False, log_level="WARNING")
    b = ServerProcess(tmp_path / "b", "--store", pg_url, http=False, log_level="WARNING")
    writers = [(a, "wa0"), (a, "wa1"), (b, "wb0"), (b, "wb1")]
    total = 3 * TICKETS_PER_WRITER * len(writers)
    try:
        with OpsledgerClient(a.target, retries=0, timeout=60) as ca, \
                OpsledgerClient(b.target, retries=0, timeout=60) as cb:
            seen: list = []
            watcher = threading.Thread(target=lambda: seen.extend(collect(ca, total, from_beginning=True)),
                                       daemon=True)
            watcher.start()
            threads = [threading.Thread(target=_write, args=(srv.target, name)) for srv, name in writers]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            watcher.join(60)
            assert len(seen) == total, f"the watcher on A saw {len(seen)} of {total} events"
            # Replica B hands out the same order and revisions from any revision A gave.
            half = total // 2
            rest = collect(cb, total - half, after=seen[half - 1].revision)
            assert [(e.revision, e.request_id, e.status) for e in rest] == \
                   [(e.revision, e.request_id, e.status) for e in seen[half:]]
            assert [e.revision for e in collect(cb, total, from_beginning=True)] == [e.revision for e in seen]
        # What was watched is the ledger as stored: the export's two logs, in log order.
        export_to(pg_url, tmp_path / "export")
        check_equals_logs(seen, tmp_path / "export")
        names = {e.result.processor_id for e in seen if e.WhichOneof("record") == "result"}
        assert names == {name for _srv, name in writers}  # both replicas' commits are in the stream
    finally:
        for srv in (a, b):
            assert srv.terminate() == 0
