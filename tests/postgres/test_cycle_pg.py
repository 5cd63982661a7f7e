"""The live cycle and its artifacts on PostgreSQL: any replica, one cycle at a time."""
from __future__ import annotations

import json
import subprocess
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime

import psycopg
import pytest

from opsledger.client.ledger_client import OpsledgerClient
from opsledger.server.artifacts.postgres import LockLost, PostgresArtifacts
from opsledger.server.ledger.postgres import locks
from opsledger.server.ledger.postgres.transfer import export_to
from tests.helpers import REPO, ServerProcess, opsledger_cmd

pytestmark = pytest.mark.slow


def test_two_replicas_cycling_at_once_are_serialised_and_both_receipts_verify(tmp_path, pg_url):
    pub = subprocess.run(opsledger_cmd("bundle", "publish", "--root", str(tmp_path / "cli"), "--store", pg_url,
                                       str(REPO / "examples/strategy_example.json")),
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert pub.returncode == 0, pub.stderr
    a = ServerProcess(tmp_path / "a", "--store", pg_url, log_level="WARNING")
    b = ServerProcess(tmp_path / "b", "--store", pg_url, log_level="WARNING")
    try:
        receipts = {}

        def cycle(name, srv):
            with OpsledgerClient(srv.target, retries=0, timeout=60) as c:
                receipts[name] = c.run_cycle().receipt

        threads = [threading.Thread(target=cycle, args=(n, s)) for n, s in (("a", a), ("b", b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert {r.result for r in receipts.values()} == {receipts["a"].result}
        refs = {r.snapshot_ref for r in receipts.values()}
        assert len(refs) == 2  # two receipts, each its own snapshot
        # Serialised: the second cycle read the first one's receipt as its last cycle.
        with psycopg.connect(pg_url) as conn:
            summaries = [json.loads(bytes(r[0])) for r in conn.execute(
                "SELECT bytes FROM artifacts WHERE path LIKE 'reports/ops/summary/snapshots/%' ORDER BY path")]
        assert len(summaries) == 2
        # Every replica serves the latest cycle, whoever ran it, and resolves its evidence.
        with OpsledgerClient(a.target, retries=0) as ca, OpsledgerClient(b.target, retries=0) as cb:
            assert ca.latest_cycle().rows[0].snapshot_ref == cb.latest_cycle().rows[0].snapshot_ref
            rid = ca.submit("ACKNOWLEDGE", {"message_id": "ev"}).request_id
            ca.consume(rid, "w")
        for ref in sorted(refs) + ["state/tickets/ticket_results.jsonl:line1"]:
            body = _get_json(f"{b.http_base}/api/evidence/resolve?ref={ref}")
            assert body["status"] == "ready" and body["rows"][0]["ref"] == ref, body
        assert _get_json(f"{b.http_base}/api/evidence/resolve?ref=state/tickets/ticket_results.jsonl:line2",
                         expect=404)["error"]["code"] == "NOT_FOUND"
    finally:
        a.terminate()
        b.terminate()
    out = tmp_path / "export"
    export_to(pg_url, out)
    for ref in refs:
        run = subprocess.run(opsledger_cmd("verify", "receipt", "--root", str(out), str(out / ref)),
                             cwd=REPO, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr


def _get_json(url: str, expect: int = 200) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            status, data = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, data = exc.code, exc.read()
    assert status == expect, (status, data)
    return json.loads(data)


@pytest.mark.parametrize("name, kind, waits", [("cycle", "cycle", True), ("reaper", "reaper", False)])
def test_a_writer_that_lost_its_lock_writes_nothing(pg_url, name, kind, waits):
    """The cycle's lock (waited for) and the scheduled reaper's (tried) alike."""
    store = PostgresArtifacts(pg_url)
    try:
        with store.exclusive(name) if waits else store.try_exclusive(name) as got:
            assert got is not False
            with psycopg.connect(pg_url, autocommit=True) as admin:
                # The lock's session dies (a network cut, an operator's kill): the lock goes with it.
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                              "AND objid = %s AND granted", (locks.KEYS[name],))
            with pytest.raises(LockLost, match=f"{name} lock was lost"):
                store.write_pair(kind, datetime.now(UTC).strftime("%Y%m%d_%H%M%S"), lambda _r: b"{}")
        assert store.read_latest(kind) is None and store.snapshots(kind) == []
    finally:
        store.close()
