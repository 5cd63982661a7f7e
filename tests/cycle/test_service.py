"""CycleService through real stubs, grpcurl, and two server processes."""
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from opsledger.client.ledger_client import OpsledgerClient
from opsledger.server.artifacts.files import FileArtifacts
from opsledger.server.cycle.receipt import LATEST
from opsledger.server.cycle.verify import verify_receipt
from opsledger.v1 import cycle_pb2
from tests.cycle.conftest import write_bundle
from tests.helpers import ServerProcess
from tests.ledger.test_grpcurl import GRPCURL


def test_run_cycle_needs_confirm(server, client):
    with pytest.raises(grpc.RpcError) as info:
        client.cycles.RunCycle(cycle_pb2.RunCycleRequest(confirm=False), timeout=10)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "confirm" in info.value.details()
    assert not (server.settings.root / LATEST).exists()


def test_latest_before_and_after(server, client, root):
    first = client.latest_cycle()
    assert first.status == "no_cycle_yet" and first.row_count == 0 and list(first.rows) == []
    write_bundle(root)
    ids = [client.submit("ACKNOWLEDGE", {"message_id": f"m{i}"}).request_id for i in range(3)]
    client.consume(ids[0])
    client.consume(ids[1])
    client.complete(ids[1], "FAILED", message="x")
    receipts = [client.run_cycle().receipt for _ in range(2)]
    assert receipts[0].result == cycle_pb2.CycleResult.OK
    assert receipts[0].reason == cycle_pb2.CycleReason.SUCCESS
    latest = client.latest_cycle()
    assert latest.status == "ready" and latest.row_count == 1
    assert latest.rows[0].cycle_id == receipts[1].cycle_id
    assert list(latest.snapshots) == [receipts[1].snapshot_ref, receipts[0].snapshot_ref]
    summary = json.loads((root / receipts[1].ops_summary.snapshot_ref).read_bytes())
    assert summary["tickets"] == {"open": 1, "in_progress": 1, "done": 0, "failed": 1, "total": 3}
    assert summary["tickets_recent"] == {"window_hours": 72, "done": 0, "failed": 1, "stale_in_progress": 0}
    assert summary["last_cycle"]["cycle_id"] == receipts[0].cycle_id
    assert summary["reco"]["snapshot_ref"] == receipts[1].reco.snapshot_ref


def test_run_cycle_through_grpcurl(server, root):
    write_bundle(root)
    proc = subprocess.run([GRPCURL, "-plaintext", "-d", '{"confirm":true}', server.target,
                           "opsledger.v1.CycleService/RunCycle"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    receipt = json.loads(proc.stdout)["receipt"]
    assert (receipt["result"], receipt["decision"], receipt["reason"]) == ("OK", "COMPLETED", "SUCCESS")
    assert verify_receipt(FileArtifacts(root), root / receipt["snapshot_ref"]) == []


def test_two_processes_three_cycles_each_never_interleave(root):
    root.mkdir(parents=True)
    write_bundle(root)
    a, b = ServerProcess(root), ServerProcess(root)
    try:
        def run(target):
            with OpsledgerClient(target, retries=0) as c:
                return c.run_cycle(timeout=120).receipt

        with ThreadPoolExecutor(6) as pool:
            receipts = list(pool.map(run, [a.target, b.target] * 3))
    finally:
        assert a.terminate() == 0 and b.terminate() == 0
    snaps = {r.snapshot_ref for r in receipts}
    assert len(receipts) == 6 and len(snaps) == 6
    for r in receipts:
        assert r.result == cycle_pb2.CycleResult.OK
        assert verify_receipt(FileArtifacts(root), root / r.snapshot_ref) == []
    latest = (root / LATEST).read_bytes()
    assert sum((root / s).read_bytes() == latest for s in snaps) == 1
    files = sorted(p.name for p in (root / "reports/live/cycle/snapshots").glob("*.json"))
    assert len(files) == 6
    for folder in ("reports/live/reco/snapshots", "reports/ops/summary/snapshots", "reports/ops/push/preview/snapshots"):
        assert len(list((root / folder).glob("*.json"))) == 6
