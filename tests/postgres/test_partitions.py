"""Network partitions between replicas and PostgreSQL (real namespaces, real links).

The topology comes from torture/netns.py (as root); the short form of the
partition scenarios of ``make torture`` runs here.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import grpc
import pytest

from opsledger.client.ledger_client import OpsledgerClient
from opsledger.server.ledger.postgres import migrate
from tests.helpers import ServerProcess
from torture import partitions
from torture.netns import Topology

pytestmark = pytest.mark.slow


def _post(base: str, path: str, body: dict) -> int:
    req = urllib.request.Request(f"{base}{path}", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _get(base: str, path: str) -> int:
    try:
        with urllib.request.urlopen(f"{base}{path}", timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_topology_removes_everything_it_made_even_when_the_test_fails():
    with pytest.raises(RuntimeError, match="boom"), Topology(2) as topo:
        topo.drop_replies(1)
        during = topo.made()
        folder = topo.cluster.dir
        raise RuntimeError("boom")
    assert during == {"netns": True, "links": [topo._near(0), topo._near(1)], "blackholes": [topo.replica_addr(1)]}
    assert topo.made() == {"netns": False, "links": [], "blackholes": []}
    assert not folder.exists()


def test_a_replica_cut_off_answers_unavailable_reports_not_serving_and_still_shuts_down(tmp_path):
    with Topology(1) as topo:
        topo.cluster.create_database("opsledger")
        migrate.migrate(topo.local_url("opsledger"), log=lambda _m: None)
        replica = ServerProcess(tmp_path / "r", "--store", topo.url(0, "opsledger"), log_level="WARNING")
        try:
            with OpsledgerClient(replica.target, retries=0, timeout=60) as c:
                rid = c.submit("ACKNOWLEDGE", {"message_id": "before"}).request_id
                at = topo.partition(0)
                # The deadline is far beyond the stated bound: the replica must answer by
                # itself (UNAVAILABLE), not leave the caller to time out.
                with pytest.raises(grpc.RpcError) as err:
                    c.submit("ACKNOWLEDGE", {"message_id": "cut off"})
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
                with pytest.raises(grpc.RpcError) as err:
                    c.ticket(rid)
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
                assert partitions.wait_health(replica.target, partitions.NOT_SERVING, at) is not None
                assert _get(replica.http_base, "/healthz") == 503
                assert _post(replica.http_base, "/api/tickets",
                             {"request_type": "ACKNOWLEDGE", "payload": {"message_id": "http"}}) == 503
                healed = topo.heal(0)
                assert partitions.wait_health(replica.target, partitions.SERVING, healed) is not None
                c.ticket(rid)  # answers again
                c.submit("ACKNOWLEDGE", {"message_id": "after"})
                assert _get(replica.http_base, "/healthz") == 200
            topo.partition(0)
            assert replica.terminate(timeout=90) == 0  # shutdown while cut off does not hang, and exits cleanly
        finally:
            if replica.proc.poll() is None:
                replica.kill()


def test_partition_scenarios_short_form_every_history_checks_out(tmp_path):
    rows = partitions.run_all("short", tmp_path)
    assert len(rows) == 5 and all(r["operations"] > 0 and r["ok"] > 0 for r in rows)
    commit, cycle = rows[3], rows[4]
    # Not vacuous: a COMMIT's answer was lost after it landed, and a retry answered that one effect;
    # a cut took down the cycle lock's holder while it held the lock.
    assert commit["landed"] >= 1 and commit["converged"] == commit["landed"], commit
    assert cycle["cut_mid_cycle"] >= 1 and cycle["receipts"] > 0, cycle
    for row in rows:
        assert row["first_violations"] == [], row
        assert row["verdict"] == "pass", row
