"""A cycle that ran but could not write its receipt is never answered as
"nothing happened" (UNAVAILABLE), so neither the CLI nor the worker repeats it."""
import subprocess

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from opsledger.client.ledger_client import OpsledgerClient
from opsledger.v1 import cycle_pb2
from opsledger.v1 import tickets_pb2 as pb
from tests.cycle.conftest import write_bundle
from tests.cycle.test_runner import block
from tests.helpers import REPO, ServerProcess, opsledger_cmd

RECO_SNAPSHOTS = "reports/live/reco/snapshots"


def reco_runs(root) -> int:
    return len(list((root / RECO_SNAPSHOTS).glob("*.json")))


@pytest.fixture
def unrecordable(root):
    """A real server whose receipt folder cannot be written (a file stands where it should be)."""
    root.mkdir(parents=True)
    write_bundle(root)
    block(root, "reports/live/cycle/snapshots")
    srv = ServerProcess(root, http=False)
    yield srv
    assert srv.terminate() == 0


def test_status_is_internal_with_what_ran(unrecordable, root):
    with OpsledgerClient(unrecordable.target, retries=0) as c, pytest.raises(grpc.RpcError) as info:
        c.cycles.RunCycle(cycle_pb2.RunCycleRequest(confirm=True), timeout=60)
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert "receipt could not be written" in info.value.details()
    [detail] = rpc_status.from_call(info.value).details
    error = error_details_pb2.ErrorInfo()
    detail.Unpack(error)
    assert error.reason == "CYCLE_NOT_RECORDED"
    assert (root / error.metadata["reco_snapshot"]).is_file()  # the steps did run
    assert reco_runs(root) == 1


def test_cli_runs_the_cycle_once(unrecordable, root):
    proc = subprocess.run(opsledger_cmd("cycle", "run", "--target", unrecordable.target), cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "INTERNAL" in proc.stderr and "Traceback" not in proc.stderr
    assert reco_runs(root) == 1  # the client library retried UNAVAILABLE: 5 runs


def test_worker_runs_the_cycle_once_and_fails_the_ticket(unrecordable, root):
    with OpsledgerClient(unrecordable.target, retries=0) as c:
        rid = c.submit("REQUEST_LIVE_CYCLE", {"reason": "nightly"}).request_id
        proc = subprocess.run(opsledger_cmd("worker", "--target", unrecordable.target, "--processor", "w1",
                                            "--once", "--wait", "1"), cwd=REPO, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        ticket = c.ticket(rid)
    assert reco_runs(root) == 1
    assert ticket.row.current_status == pb.TicketStatus.FAILED
    assert "INTERNAL" in ticket.row.last_message and "receipt could not be written" in ticket.row.last_message
