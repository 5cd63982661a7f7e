"""Bundle check (pure) and publish (real files)."""
import os
from datetime import timedelta

import pytest

from opsledger.server.artifacts.files import FileArtifacts
from opsledger.server.common.canonical import pretty
from opsledger.server.common.clock import Clock, iso
from opsledger.server.cycle.bundle import check_bundle, make_bundle
from opsledger.server.cycle.publish import PublishRefused, publish
from tests.cycle.conftest import strategy

NOW = Clock().now()


def raw(strat=None, age=60, key=None, refs=(), **top):
    b = make_bundle(strat or strategy(), iso(NOW - timedelta(seconds=age)), "bid", key,
                    {"pc_host": "pc", "git_commit": None, "git_branch": None}, list(refs))
    b.update(top)
    return pretty(b)


def test_pass():
    assert check_bundle(raw(), NOW).decision == "PASS"


@pytest.mark.parametrize("bad,needle", [
    (b"{not json", "unreadable"),
    (b"[]", "not a JSON object"),
    (None, None),
])
def test_unreadable(bad, needle):
    c = check_bundle(bad, NOW)
    if bad is None:
        assert c.decision == "NO_BUNDLE"
    else:
        assert c.decision == "FAIL" and needle in c.error_text()


@pytest.mark.parametrize("change,needle", [
    (dict(universe=[]), "universe"),
    (dict(universe=["069500", "069500"]), "duplicate"),
    (dict(universe=[{"name": "no ticker"}]), "universe[0]"),
    (dict(risk_limits={"max_position_pct": 1.5}), "max_position_pct"),
    (dict(risk_limits={"max_position_pct": 0}), "max_position_pct"),
    (dict(position_limits={"max_positions": 0, "min_cash_pct": 0.1}), "max_positions"),
    (dict(position_limits={"max_positions": 3, "min_cash_pct": 1}), "min_cash_pct"),
    (dict(decision_params={"api_key": "x"}), "secret-looking"),
    (dict(name=""), "strategy.name"),
])
def test_fail_cases(change, needle):
    c = check_bundle(raw(strategy(**change)), NOW)
    assert c.decision == "FAIL" and needle in c.error_text(), c.error_text()


def test_wrong_schema_and_future():
    assert check_bundle(raw(schema="OTHER"), NOW).decision == "FAIL"
    assert "future" in check_bundle(raw(age=-600), NOW).error_text()
    assert check_bundle(raw(age=-120), NOW).decision == "PASS"  # within 5 minutes


def test_secret_in_source_block_fails():
    c = check_bundle(raw(source={"pc_host": "pc", "slack_token": "xoxb"}), NOW)
    assert c.decision == "FAIL" and "source.slack_token" in c.error_text()


@pytest.mark.parametrize("ref", ["../outside.json", "%2e%2e/x", "/etc/passwd", "file:x.json", "a\\b", "a b"])
def test_malformed_evidence_refs_warn(ref, tmp_path):
    c = check_bundle(raw(refs=[ref]), NOW, check_ref=FileArtifacts(tmp_path).check_ref)
    assert c.decision == "WARN" and "RAW_PATH_ONLY" in c.error_text()


def test_symlink_escape_in_evidence_refs_warns(tmp_path):
    root = tmp_path / "root"
    (root / "reports").mkdir(parents=True)
    os.symlink(tmp_path, root / "reports" / "up")
    c = check_bundle(raw(refs=["reports/up/x.json"]), NOW, check_ref=FileArtifacts(root).check_ref)
    assert c.decision == "WARN" and "outside the data root" in c.error_text()


def test_publish_writes_latest_and_snapshot_and_signs(tmp_path):
    root = tmp_path / "root"
    src = tmp_path / "strategy.json"
    src.write_bytes(pretty(strategy()))
    key = tmp_path / "k"
    key.write_bytes(b"secret-key\n")
    latest, snap, bundle = publish(FileArtifacts(root), src, key)
    assert (root / latest).read_bytes() == (root / snap).read_bytes()
    assert check_bundle((root / latest).read_bytes(), Clock().now(), key=b"secret-key").decision == "PASS"
    assert check_bundle((root / latest).read_bytes(), Clock().now(), key=b"other").decision == "FAIL"
    src.write_bytes(pretty(strategy(universe=[])))
    with pytest.raises(PublishRefused):
        publish(FileArtifacts(root), src)
