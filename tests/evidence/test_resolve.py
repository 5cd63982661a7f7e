"""GET /api/evidence/resolve over real HTTP against real files: every ref
opsledger writes resolves; ledger result lines resolve; hostile refs get the
right code and nothing outside the root is read."""
import json

import pytest

from opsledger.server.artifacts.layout import KINDS
from opsledger.server.ledger.records import REQUESTS_REF as REQUESTS
from opsledger.server.ledger.records import RESULTS_REF as RESULTS
from tests.cycle.conftest import write_bundle

RESOLVE = "/api/evidence/resolve"
SECRET = "outside-the-root-7f3a"


def resolve(ev, ref):
    return ev.http.get(RESOLVE, params={"ref": ref})


def refs_in(value):
    """Every string in a report that is a raw path (reports/..., state/...)."""
    if isinstance(value, dict):
        return [r for v in value.values() for r in refs_in(v)]
    if isinstance(value, list):
        return [r for v in value for r in refs_in(v)]
    if isinstance(value, str) and value.startswith(("reports/", "state/")):
        return [value]
    return []


def ticket(ev, request_type="ACKNOWLEDGE", payload=None):
    r = ev.http.post("/api/tickets", json={"request_type": request_type, "payload": payload or {"message_id": "m"}})
    return r.json()["request_id"]


def full_run(ev, root):
    """Tickets in every state, a full cycle, then a reaper run that cleans one ticket."""
    write_bundle(root)
    done, stale = ticket(ev), ticket(ev)
    ticket(ev)  # stays OPEN
    for rid in (done, stale):
        assert ev.http.post("/api/tickets/consume", json={"request_id": rid}).status_code == 200
    ev.http.post("/api/tickets/complete", json={"request_id": done, "status": "DONE", "message": "ok"})
    cycle = ev.http.post("/api/live/cycle/run?confirm=true")
    assert cycle.status_code == 200, cycle.text
    ev.clock.advance(120)
    reap = ev.http.post("/api/tickets/reaper/run", json={"threshold_seconds": 60})
    assert reap.status_code == 200 and reap.json()["report"]["cleaned_count"] == 1, reap.text
    return cycle.json()["receipt"], reap.json()


def test_every_ref_of_a_full_cycle_and_a_reaper_run_resolves(ev, root):
    receipt, reap = full_run(ev, root)
    written = [p for p in (root / "reports").rglob("*.json")]
    assert len(written) >= 10  # reco, summary, preview, receipt, reaper: latest + snapshot each
    refs = {reap["snapshot_ref"]} | set(refs_in(receipt)) | set(refs_in(reap))
    for path in written:
        refs.add(path.relative_to(root).as_posix())
        refs |= set(refs_in(json.loads(path.read_bytes())))
    assert {REQUESTS, RESULTS, receipt["snapshot_ref"], receipt["reco"]["snapshot_ref"],
            receipt["ops_summary"]["snapshot_ref"], receipt["push"]["preview_ref"]} <= refs
    for ref in sorted(refs):
        r = resolve(ev, ref)
        assert r.status_code == 200, (ref, r.text)
        body = r.json()
        assert body["status"] == "ready" and body["schema"] == "EVIDENCE_VIEW_V1" and body["error"] is None, ref
        assert body["row_count"] == 1 and body["rows"][0]["ref"] == ref
        row = body["rows"][0]
        if ref in (REQUESTS, RESULTS):
            lines = (root / ref).read_bytes().count(b"\n")
            assert row["source"] == {"kind": "JSONL_FILE", "path": ref, "line": None}
            assert row["data"] == {"log": ref, "line_count": lines}
        else:
            assert row["source"] == {"kind": "JSON_FILE", "path": ref, "line": None}
            assert row["data"] == json.loads((root / ref).read_bytes()), ref


def test_ticket_results_carry_their_line_refs_and_each_resolves_to_that_line(ev, root):
    receipt, _reap = full_run(ev, root)
    lines = (root / RESULTS).read_bytes().splitlines()
    board = ev.http.get("/api/tickets/latest").json()["rows"]
    cited = set()
    for row in board:
        t = ev.http.get(f"/api/tickets/{row['request_id']}").json()
        assert len(t["result_refs"]) == len(t["results"])
        for result, ref in zip(t["results"], t["result_refs"]):
            path, n = ref.rsplit(":line", 1)
            assert path == RESULTS and json.loads(lines[int(n) - 1])["result_id"] == result["result_id"]
            r = resolve(ev, ref).json()
            assert r["status"] == "ready", r
            assert r["rows"][0]["source"] == {"kind": "JSONL_LINE", "path": RESULTS, "line": int(n)}
            assert r["rows"][0]["data"] == json.loads(lines[int(n) - 1])
            cited.add(int(n))
    assert cited == set(range(1, len(lines) + 1))  # every line of the log is some result's ref


@pytest.fixture
def hostile_root(ev, root, tmp_path):
    """A full run, plus a secret outside the root and symlinks pointing at it."""
    full_run(ev, root)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text(json.dumps({"secret": SECRET}))
    (outside / "live_cycle_20200101_000000.json").write_text(json.dumps({"secret": SECRET}))
    reco_latest = root / KINDS["reco"].latest_ref
    reco_latest.unlink()
    reco_latest.symlink_to(outside / "secret.json")
    snaps = root / "reports/ops/tickets/reaper/snapshots"
    for p in snaps.iterdir():
        p.unlink()
    snaps.rmdir()
    snaps.symlink_to(outside)  # a whole snapshots folder escaping the root
    (outside / "reaper_20200101_000000.json").write_text(json.dumps({"secret": SECRET}))
    return root


HOSTILE = [
    ("traversal", "../outside/secret.json", 400),
    ("traversal inside a kind", "reports/live/cycle/latest/../../../../outside/secret.json", 400),
    ("encoded traversal", "%2e%2e/outside/secret.json", 400),
    ("double-encoded traversal", "reports/%252e%252e/secret.json", 400),
    ("encoded slash", "reports/live/cycle/latest/..%2Fsecret.json", 400),
    ("absolute", "/etc/passwd", 400),
    ("file URL", "file:///etc/passwd", 400),
    ("http URL", "http://127.0.0.1:1/reports/live/cycle/latest/live_cycle_latest.json", 400),
    ("NUL", "reports/live/cycle/latest/live_cycle_latest.json\x00.txt", 400),
    ("backslash", "reports\\live\\cycle\\latest\\live_cycle_latest.json", 400),
    ("symlinked file escapes", "reports/live/reco/latest/reco_latest.json", 400),
    ("symlinked folder escapes", "reports/ops/tickets/reaper/snapshots/reaper_20200101_000000.json", 400),
    ("outside the artifact kinds", "state/tickets/.ledger.lock", 400),
    ("a folder, not an artifact", "reports/live/cycle/latest", 400),
    ("a kind's name, other stem", "reports/live/cycle/snapshots/secret.json", 400),
    ("line 0", f"{RESULTS}:line0", 400),
    ("line of a log whose lines are not evidence", f"{REQUESTS}:line1", 400),
    ("line past the end", f"{RESULTS}:line999999", 404),
    ("valid snapshot name, nothing there", "reports/live/cycle/snapshots/live_cycle_20000101_000000.json", 404),
    ("empty", "", 400),
]


@pytest.mark.parametrize("name,ref,status", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_refs_get_the_right_code_and_read_nothing_outside(ev, hostile_root, name, ref, status):
    before = sorted((p.relative_to(hostile_root).as_posix(), p.stat().st_size)
                    for p in hostile_root.rglob("*") if p.is_file() and not p.is_symlink())
    r = resolve(ev, ref)
    assert r.status_code == status, (ref, r.text)
    assert SECRET not in r.text
    body = r.json()
    assert body["status"] == "error" and body["schema"] == "EVIDENCE_VIEW_V1" and body["asof"]
    assert body["error"]["code"] == {400: "INVALID_REF", 404: "NOT_FOUND"}[status]
    assert body["error"]["message"].startswith("ref:") and body["rows"] == [] and body["row_count"] == 0
    after = sorted((p.relative_to(hostile_root).as_posix(), p.stat().st_size)
                   for p in hostile_root.rglob("*") if p.is_file() and not p.is_symlink())
    assert after == before


def test_missing_ref_parameter_and_unknown_parameter(ev):
    r = ev.http.get(RESOLVE)
    assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_REF"
    r = ev.http.get(RESOLVE, params={"ref": RESULTS, "path": "/etc/passwd"})
    assert r.status_code == 400 and "path" in r.json()["message"]


def test_a_stored_file_that_is_not_json_is_parse_error_with_a_preview(ev, root):
    write_bundle(root)
    receipt = ev.http.post("/api/live/cycle/run?confirm=true").json()["receipt"]
    (root / receipt["ops_summary"]["snapshot_ref"]).write_bytes(b"{not json at all" + b"x" * 5000)
    r = resolve(ev, receipt["ops_summary"]["snapshot_ref"])
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "error" and body["error"]["code"] == "PARSE_ERROR" and body["rows"] == []
    assert body["error"]["preview"].startswith("{not json at all") and len(body["error"]["preview"]) <= 200


def test_an_oversized_file_is_refused_with_a_preview_not_a_5xx(ev, root):
    write_bundle(root)
    receipt = ev.http.post("/api/live/cycle/run?confirm=true").json()["receipt"]
    (root / receipt["snapshot_ref"]).write_bytes(b'{"a": "' + b"x" * (2 << 20) + b'"}')
    body = resolve(ev, receipt["snapshot_ref"]).json()
    assert body["status"] == "error" and body["error"]["code"] == "TOO_LARGE"
    assert body["error"]["preview"].startswith('{"a": "xxx')


def test_files_deleted_under_a_running_server_are_not_found(ev, root):
    write_bundle(root)
    receipt = ev.http.post("/api/live/cycle/run?confirm=true").json()["receipt"]
    (root / receipt["snapshot_ref"]).unlink()
    r = resolve(ev, receipt["snapshot_ref"])
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
    import shutil

    shutil.rmtree(root / "reports")
    r = resolve(ev, receipt["reco"]["latest_ref"])
    assert r.status_code == 404


def test_nothing_outside_the_root_is_even_opened(ev, root, tmp_path):
    """The escaping target is a FIFO: opening it for reading would block (no
    writer), so a prompt 400 proves the server refused before any open."""
    import os

    write_bundle(root)
    receipt = ev.http.post("/api/live/cycle/run?confirm=true").json()["receipt"]
    fifo = tmp_path / "outside.fifo"
    os.mkfifo(fifo)
    target = root / receipt["snapshot_ref"]
    target.unlink()
    target.symlink_to(fifo)
    r = ev.http.get(RESOLVE, params={"ref": receipt["snapshot_ref"]}, timeout=20)
    assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_REF"
    assert "outside the data root" in r.json()["error"]["message"]


def test_openapi_describes_the_resolver(ev):
    doc = ev.http.get("/openapi.json").json()
    op = doc["paths"]["/api/evidence/resolve"]["get"]
    assert [p["name"] for p in op["parameters"]] == ["ref"]
    assert {"200", "400", "404"} <= set(op["responses"])
    ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert list(schema["properties"]) == ["status", "schema", "asof", "row_count", "rows", "error"]


def test_a_fifo_at_a_valid_ref_is_not_found_and_blocks_nothing(ev, root):
    import os

    write_bundle(root)
    receipt = ev.http.post("/api/live/cycle/run?confirm=true").json()["receipt"]
    (root / receipt["snapshot_ref"]).unlink()
    os.mkfifo(root / receipt["snapshot_ref"])
    r = ev.http.get(RESOLVE, params={"ref": receipt["snapshot_ref"]}, timeout=20)
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
