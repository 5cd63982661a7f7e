"""One test per row of the result table, each reached by a real fault."""
import json
import socket
import subprocess

import pytest

from opsledger.server.artifacts.files import FileArtifacts
from opsledger.server.common.canonical import report_sha256
from opsledger.server.cycle import runner as runner_mod
from opsledger.server.cycle.receipt import LATEST
from opsledger.server.cycle.verify import refs_of, verify_receipt
from tests.cycle.conftest import strategy, write_bundle
from tests.helpers import REPO, opsledger_cmd


def outcome(r):
    return r["result"], r["decision"], r["reason"]


def assert_verifiable(root, receipt):
    latest = root / LATEST
    snap = root / receipt["snapshot_ref"]
    assert latest.read_bytes() == snap.read_bytes()
    assert json.loads(latest.read_bytes()) == receipt
    assert verify_receipt(FileArtifacts(root), latest) == []
    for ref in refs_of(receipt):
        assert (root / ref).is_file(), ref


def block(root, rel):
    """Make a report folder unwritable for real: a plain file where the folder should be."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("not a folder")


def test_success(runner, root):
    write_bundle(root)
    r = runner.run()
    assert outcome(r) == ("OK", "COMPLETED", "SUCCESS")
    assert r["bundle"]["decision"] == "PASS" and r["bundle"]["valid"] is True
    assert r["reco"]["decision"] == "GENERATED" and r["push"]["delivery_actual"] == "CONSOLE_SIMULATED"
    assert r["push"]["send_receipt_ref"] is None
    assert runner.printed and "OK / COMPLETED / SUCCESS" in runner.printed[0]
    assert list(r) == ["schema", "cycle_id", "asof", "result", "decision", "reason", "bundle", "reco",
                       "ops_summary", "push", "snapshot_ref", "evidence_refs", "integrity"]
    assert_verifiable(root, r)


def test_no_bundle(runner, root):
    r = runner.run()
    assert outcome(r) == ("FAILED", "BLOCKED", "BUNDLE_FAIL")
    assert r["bundle"]["decision"] == "NO_BUNDLE" and r["bundle"]["evidence_refs"] == []
    assert r["reco"]["decision"] == "EMPTY_RECO" and r["reco"]["reason"] == "NO_BUNDLE"
    assert_verifiable(root, r)


def test_bad_hash(runner, root):
    write_bundle(root, tamper=lambda b: b["integrity"].update(payload_sha256="0" * 64))
    r = runner.run()
    assert outcome(r) == ("FAILED", "BLOCKED", "BUNDLE_FAIL")
    assert r["bundle"]["decision"] == "FAIL" and "does not match" in r["bundle"]["error"]
    assert r["reco"]["decision"] == "BLOCKED" and r["reco"]["reason"] == "BUNDLE_FAIL"
    assert_verifiable(root, r)


def test_bad_signature_with_key_configured(runner, root, tmp_path):
    key = tmp_path / "bundle.key"
    key.write_bytes(b"the-real-key")
    write_bundle(root, key=b"another-key")
    runner.key_file = key
    r = runner.run()
    assert outcome(r) == ("FAILED", "BLOCKED", "BUNDLE_FAIL")
    assert "signature" in r["bundle"]["error"]
    write_bundle(root, key=b"the-real-key")
    assert outcome(runner.run()) == ("OK", "COMPLETED", "SUCCESS")


def test_legacy_hash_form_is_accepted(runner, root):
    from opsledger.server.common.canonical import legacy_sha256_hex

    write_bundle(root, tamper=lambda b: b["integrity"].update(payload_sha256=legacy_sha256_hex(b["strategy"])))
    assert outcome(runner.run()) == ("OK", "COMPLETED", "SUCCESS")


def test_stale_bundle(runner, root):
    write_bundle(root, age_s=2 * 86400)
    r = runner.run()
    assert outcome(r) == ("OK", "PARTIAL", "BUNDLE_STALE")
    assert r["bundle"]["decision"] == "WARN" and r["bundle"]["stale"] is True
    assert r["reco"]["decision"] == "EMPTY_RECO" and r["reco"]["reason"] == "BUNDLE_STALE"
    assert_verifiable(root, r)


def test_monthly_bundle_is_fresh_for_35_days(runner, root):
    s = strategy(rebalance_rule={"frequency": "MONTHLY", "time_kst": "15:10"})
    write_bundle(root, s, age_s=20 * 86400)
    assert outcome(runner.run()) == ("OK", "COMPLETED", "SUCCESS")
    write_bundle(root, s, age_s=36 * 86400)
    assert outcome(runner.run())[2] == "BUNDLE_STALE"


def test_reco_folder_cannot_be_written(runner, root):
    write_bundle(root)
    block(root, "reports/live/reco/snapshots")
    r = runner.run()
    assert outcome(r) == ("FAILED", "PARTIAL", "RECO_FAIL")
    assert r["reco"]["snapshot_ref"] is None and r["reco"]["latest_ref"] is None and r["reco"]["error"]
    assert r["ops_summary"]["snapshot_ref"]  # later steps still ran
    assert_verifiable(root, r)
    # The summary and the push agree with the receipt: no reco report was written.
    summary = json.loads((root / r["ops_summary"]["snapshot_ref"]).read_bytes())
    assert summary["overall_status"] == "BLOCKED"
    assert summary["reco"] == {"decision": None, "reason": None, "snapshot_ref": None, "summary": None}
    [missing] = [x for x in summary["top_risks"] if x["code"] == "RECO_MISSING"]
    assert "Error" in missing["message"] and "snapshots" in missing["message"]
    text = runner.printed[0]
    assert "FAILED / PARTIAL / RECO_FAIL" in text and "GENERATED" not in text


def test_summary_failure(runner, root):
    write_bundle(root)
    block(root, "reports/ops/summary/snapshots")
    r = runner.run()
    assert outcome(r) == ("FAILED", "PARTIAL", "SUMMARY_FAIL")
    assert r["ops_summary"]["error"] and r["push"]["preview_ref"]
    assert_verifiable(root, r)


def test_push_failure(runner, root):
    write_bundle(root)
    block(root, "reports/ops/push/preview/snapshots")
    r = runner.run()
    assert outcome(r) == ("FAILED", "PARTIAL", "PUSH_FAIL")
    assert r["push"]["preview_ref"] is None and r["push"]["error"]
    assert_verifiable(root, r)


def test_exception_inside_a_step(runner, root):
    def broken_summary(*_a, **_k):
        raise RuntimeError("summary exploded")

    write_bundle(root)
    runner.steps["summary"] = broken_summary
    r = runner.run()
    assert outcome(r) == ("FAILED", "PARTIAL", "SUMMARY_FAIL")
    assert "summary exploded" in r["ops_summary"]["error"]
    assert_verifiable(root, r)


def test_error_while_generating_blocks_the_reco(runner, root):
    s = strategy(decision_params={"scores": {"069500": "high"}})
    write_bundle(root, s)
    r = runner.run()
    assert outcome(r) == ("OK", "PARTIAL", "RECO_BLOCKED")
    assert r["reco"]["decision"] == "BLOCKED" and r["reco"]["reason"] == "SYSTEM_ERROR"
    assert r["reco"]["error"] == ("error while generating: ValueError: "
                                  "decision_params.scores[069500] is not a number")
    assert_verifiable(root, r)


def test_error_outside_any_step(runner, root):
    write_bundle(root)
    latest = root / LATEST
    latest.parent.mkdir(parents=True, exist_ok=True)
    latest.write_text("{ not json")
    r = runner.run()
    assert outcome(r) == ("FAILED", "BLOCKED", "SYSTEM_ERROR")
    assert r["reco"]["decision"] == "GENERATED"  # every step still ran
    # The receipt says why, not only the server log.
    assert r["ops_summary"]["error"].startswith("SYSTEM_ERROR: reading the previous receipt: JSONDecodeError")
    assert (r["bundle"]["error"], r["reco"]["error"], r["push"]["error"]) == (None, None, None)
    assert_verifiable(root, r)


def test_receipt_that_cannot_be_written_says_why(runner, root, capsys):
    write_bundle(root)
    block(root, "reports/live/cycle/snapshots")
    with pytest.raises(runner_mod.ReceiptNotWritten):
        runner.run()
    assert "receipt could not be written" in capsys.readouterr().err


def test_blocked_push_text_is_not_printed_and_the_receipt_says_so(runner, root):
    write_bundle(root, strategy(name="evil_${TELEGRAM_BOT_TOKEN}"))
    r = runner.run()
    assert outcome(r) == ("FAILED", "PARTIAL", "PUSH_FAIL")
    assert r["push"]["error"] == "message blocked by the secret check: template marker '${' in text"
    preview = json.loads((root / r["push"]["preview_ref"]).read_bytes())
    assert preview["rendered"][0]["blocked"] is True
    assert preview["rendered"][0]["secret_injection_check"] == "BLOCKED"
    assert preview["summary"] == {"total_render": 1, "pass": 0, "blocked": 1}
    assert runner.printed == []
    assert_verifiable(root, r)


def test_no_network_during_a_cycle(runner, root, monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled for this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    write_bundle(root)
    r = runner.run()
    assert outcome(r) == ("OK", "COMPLETED", "SUCCESS")
    assert r["push"]["delivery_actual"] == "CONSOLE_SIMULATED"
    assert attempts == []


def test_code_base_has_no_sender():
    pattern = r"(smtplib|telegram|slack_sdk|requests\.post|urllib\.request|http\.client|sendmail)"
    proc = subprocess.run(["grep", "-rEn", pattern, "server", "client"], cwd=REPO, capture_output=True, text=True)
    assert proc.stdout == ""


def independent_canonical(obj) -> bytes:
    # json with sorted keys and no spaces equals RFC 8785 for receipts (strings, ints, bools, null)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def test_hash_recomputed_independently_and_tamper_detected(runner, root):
    import hashlib

    write_bundle(root)
    r = runner.run()
    body = {k: v for k, v in r.items() if k != "integrity"}
    assert hashlib.sha256(independent_canonical(body)).hexdigest() == r["integrity"]["payload_sha256"]
    assert report_sha256(r) == r["integrity"]["payload_sha256"]
    snap = root / r["snapshot_ref"]
    ok = subprocess.run(opsledger_cmd("verify", "receipt", "--root", str(root), str(snap)), cwd=REPO,
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout
    data = bytearray(snap.read_bytes())
    i = data.index(b'"OK"') + 1
    data[i] = ord("X")  # one byte
    snap.write_bytes(bytes(data))
    bad = subprocess.run(opsledger_cmd("verify", "receipt", "--root", str(root), str(snap)), cwd=REPO,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "integrity.payload_sha256 mismatch" in bad.stdout
    (root / r["reco"]["snapshot_ref"]).unlink()
    latest = subprocess.run(opsledger_cmd("verify", "receipt", "--root", str(root), str(root / LATEST)), cwd=REPO,
                            capture_output=True, text=True)
    assert latest.returncode == 1 and "nothing is stored there" in latest.stdout
