"""What the CLI prints is what is stored: receipts verify, rows carry their nulls."""
import json
import subprocess

from opsledger.client.ledger_client import OpsledgerClient
from opsledger.server.cycle.receipt import LATEST
from tests.cycle.conftest import write_bundle
from tests.helpers import REPO, ServerProcess, opsledger_cmd


def cli(*args, cwd=REPO):
    return subprocess.run(opsledger_cmd(*args), cwd=cwd, capture_output=True, timeout=120)


def test_printed_receipts_are_the_stored_bytes_and_verify(root, tmp_path):
    root.mkdir(parents=True)
    srv = ServerProcess(root, http=False)
    out = tmp_path / "elsewhere"
    out.mkdir()
    try:
        # No bundle: a FAILED receipt full of nulls, falses and empty lists.
        failed = cli("cycle", "run", "--target", srv.target)
        write_bundle(root)
        ok = cli("cycle", "run", "--target", srv.target)
        latest = cli("cycle", "latest", "--target", srv.target)
        snapshots = cli("cycle", "latest", "--snapshots", "--target", srv.target)
    finally:
        assert srv.terminate() == 0
    assert failed.returncode == 1 and ok.returncode == 0 and latest.returncode == 0, failed.stderr
    for proc in (failed, ok):
        receipt = json.loads(proc.stdout)
        assert proc.stdout == (root / receipt["snapshot_ref"]).read_bytes()
    assert json.loads(failed.stdout)["bundle"]["stale"] is False
    assert json.loads(failed.stdout)["bundle"]["latest_ref"] is None
    assert latest.stdout == (root / LATEST).read_bytes() == ok.stdout
    assert snapshots.stdout.decode().split() == [json.loads(ok.stdout)["snapshot_ref"],
                                                 json.loads(failed.stdout)["snapshot_ref"]]
    # opsledger cycle run > r.json && opsledger verify receipt r.json
    for name, proc in (("failed.json", failed), ("ok.json", ok)):
        (out / name).write_bytes(proc.stdout)
        check = cli("verify", "receipt", "--root", str(root), name, cwd=out)
        assert check.returncode == 0, check.stdout


def test_board_ticket_and_reap_print_every_contract_field(root):
    root.mkdir(parents=True)
    srv = ServerProcess(root, http=False)
    try:
        with OpsledgerClient(srv.target, retries=0) as c:
            rid = c.submit("REQUEST_RECONCILE", {"mode": "INCREMENTAL", "reason": "r", "lookback_days": 7}).request_id
        board = cli("board", "--json", "--target", srv.target)
        ticket = cli("ticket", rid, "--target", srv.target)
        reap = cli("reap", "--dry-run", "--target", srv.target)
    finally:
        assert srv.terminate() == 0
    [row] = json.loads(board.stdout)["rows"]
    assert row == {
        "request_id": rid, "requested_at": row["requested_at"], "request_type": "REQUEST_RECONCILE",
        "payload": {"mode": "INCREMENTAL", "reason": "r", "lookback_days": 7}, "trace_id": None,
        "current_status": "OPEN", "last_message": None, "last_processed_at": None,
    }
    assert list(row) == ["request_id", "requested_at", "request_type", "payload", "trace_id",
                         "current_status", "last_message", "last_processed_at"]
    view = json.loads(ticket.stdout)
    assert view["results"] == [] and view["row"] == row and view["request"]["trace_id"] is None
    report = json.loads(reap.stdout)["report"]
    assert report["cleaned_count"] == 0 and report["stale_count"] == 0 and report["cleaned_items"] == []
    assert report["decision"] == "NONE"


def test_verify_takes_the_root_from_the_path_or_says_to_pass_it(runner, root, tmp_path):
    write_bundle(root)
    r = runner.run()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for receipt in (root / LATEST, root / r["snapshot_ref"]):
        proc = cli("verify", "receipt", str(receipt), cwd=elsewhere)  # no --root, another folder
        assert proc.returncode == 0, proc.stdout
    copy = elsewhere / "r.json"
    copy.write_bytes((root / LATEST).read_bytes())
    proc = cli("verify", "receipt", str(copy), cwd=elsewhere)
    assert proc.returncode == 1 and b"pass --root DATA_ROOT" in proc.stdout
    assert cli("verify", "receipt", "--root", str(root), str(copy), cwd=elsewhere).returncode == 0


def test_verify_checks_the_seeds_key_order(runner, root):
    write_bundle(root)
    r = runner.run()
    # Same content, same canonical hash, keys out of the seed's order.
    moved = {"cycle_id": r["cycle_id"], **{k: v for k, v in r.items() if k != "cycle_id"}}
    moved["push"] = {"delivery_actual": r["push"]["delivery_actual"],
                     **{k: v for k, v in r["push"].items() if k != "delivery_actual"}}
    path = root / "reordered.json"
    path.write_text(json.dumps(moved, indent=2))
    proc = cli("verify", "receipt", "--root", str(root), str(path))
    assert proc.returncode == 1
    assert b"not the seed's keys in the seed's order" in proc.stdout and b"push: keys" in proc.stdout
    assert b"payload_sha256 mismatch" not in proc.stdout
