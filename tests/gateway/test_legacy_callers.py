"""Legacy callers as they really call (real HTTP, real gRPC server, real files):
confirm in the query string with no body, and the receipt envelope."""
import json

import httpx

from opsledger.server.artifacts.layout import KINDS
from tests.cycle.conftest import write_bundle

RUN = "/api/live/cycle/run"
RECEIPTS = KINDS["cycle"].snapshot_dir


def receipts(root):
    folder = root / RECEIPTS
    return sorted(p.name for p in folder.glob("*.json")) if folder.is_dir() else []


def bare_post(gw, url):
    """POST with an empty body and no Content-Type (curl -X POST sends not even
    Content-Length: test_curl_without_body_runs_the_cycle)."""
    request = gw.http.build_request("POST", url)
    assert "content-type" not in request.headers and request.headers.get("content-length", "0") == "0"
    return gw.http.send(request)


def test_run_with_confirm_in_query_and_no_body_writes_exactly_one_receipt(gw, root):
    write_bundle(root)
    r = bare_post(gw, f"{RUN}?confirm=true")
    assert r.status_code == 200, r.text
    receipt = r.json()["receipt"]
    assert (receipt["result"], receipt["decision"]) == ("OK", "COMPLETED")
    assert receipts(root) == [receipt["snapshot_ref"].rsplit("/", 1)[1]]
    stored = json.loads((root / receipt["snapshot_ref"]).read_bytes())
    assert stored["cycle_id"] == receipt["cycle_id"]


def test_run_without_confirm_says_how_and_writes_nothing(gw, root):
    write_bundle(root)
    for url in (RUN, f"{RUN}?confirm=false", f"{RUN}?confirm=0"):
        r = bare_post(gw, url)
        assert r.status_code == 400, (url, r.text)
        message = r.json()["message"]
        assert "confirm" in message and "?confirm=true" in message and '{"confirm": true}' in message
    assert receipts(root) == [] and not (root / "reports").exists()


def test_bad_query_values_are_400_naming_the_field_and_write_nothing(gw, root):
    write_bundle(root)
    for url, needle in ((f"{RUN}?confirm=yes-please", "confirm"), (f"{RUN}?colour=red", "colour"),
                        (f"{RUN}?confirm=true&confirm=true", "confirm")):
        r = bare_post(gw, url)
        assert r.status_code == 400 and needle in r.json()["message"], (url, r.text)
    r = bare_post(gw, "/api/tickets?payload=x&request_type=ACKNOWLEDGE")
    assert r.status_code == 400 and "payload" in r.json()["message"] and "JSON body" in r.json()["message"]
    assert receipts(root) == []


def violation(r) -> tuple[str, str]:
    (detail,) = r.json()["details"]
    (v,) = detail["field_violations"]
    return v["field"], v["description"]


def test_a_body_when_sent_is_the_whole_request_and_must_be_json(gw, root):
    write_bundle(root)
    # The body is the request: a query string beside it is refused, never merged or dropped.
    r = gw.http.post(f"{RUN}?confirm=true", json={})
    assert r.status_code == 400 and violation(r)[0] == "confirm", r.text
    # A body without a JSON content type is still refused, query or not.
    r = gw.http.post(f"{RUN}?confirm=true", content=b'{"confirm": true}', headers={"content-type": "text/plain"})
    assert r.status_code == 415
    r = gw.http.post(f"{RUN}?confirm=true", content=b"confirm=true",
                     headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and "JSON" in r.json()["message"]
    r = gw.http.post(f"{RUN}?confirm=false", json={"confirm": True})
    assert r.status_code == 400 and violation(r)[0] == "confirm", r.text
    assert receipts(root) == []
    r = gw.http.post(RUN, json={"confirm": True})
    assert r.status_code == 200 and len(receipts(root)) == 1


def test_a_query_beside_a_body_is_refused_and_nothing_runs(gw, root):
    """?dry_run=true beside a body once ran a real reap (the query string was dropped)."""
    reports = root / KINDS["reaper"].snapshot_dir
    r = gw.http.post("/api/tickets/reaper/run?dry_run=true&threshold_seconds=5", json={"max_clean": 5})
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "INVALID_ARGUMENT"
    field, rule = violation(r)
    assert field == "dry_run" and "query parameters are not read when a JSON body is sent" in rule
    assert r.json()["message"].startswith("dry_run: ")
    assert not reports.exists()
    # The same request, all in the body, is a dry run: still no report.
    r = gw.http.post("/api/tickets/reaper/run", json={"max_clean": 5, "dry_run": True})
    assert r.status_code == 200 and r.json()["snapshot_ref"] is None, r.text
    assert not reports.exists()
    # An empty body still takes its scalars from the query string.
    r = bare_post(gw, "/api/tickets/reaper/run?dry_run=true&max_clean=5")
    assert r.status_code == 200 and r.json()["snapshot_ref"] is None, r.text
    assert not reports.exists()


def test_query_scalars_are_generic_for_every_post_route(gw):
    """Not a special case of the cycle route: a ticket flow through query strings only."""
    sub = gw.http.post("/api/tickets", json={"request_type": "ACKNOWLEDGE", "payload": {"message_id": "m1"}})
    rid = sub.json()["request_id"]
    con = bare_post(gw, f"/api/tickets/consume?request_id={rid}&processor_id=cron1")
    assert con.status_code == 200 and con.json()["new_status"] == "IN_PROGRESS", con.text
    com = bare_post(gw, f"/api/tickets/complete?request_id={rid}&status=DONE&processor_id=cron1&message=ok"
                        "&artifacts=reports/a.json&artifacts=reports/b.json")
    assert com.status_code == 200 and com.json()["new_status"] == "DONE", com.text
    ticket = gw.http.get(f"/api/tickets/{rid}").json()
    assert ticket["results"][1]["artifacts"] == ["reports/a.json", "reports/b.json"]
    dry = bare_post(gw, "/api/tickets/reaper/run?dry_run=true&threshold_seconds=5")
    assert dry.status_code == 200 and dry.json()["report"]["threshold_seconds"] == 5


def test_latest_envelope_before_and_after_the_first_cycle(gw, root):
    before = gw.http.get("/api/live/cycle/latest")
    assert before.status_code == 200
    body = before.json()
    assert body["schema"] == "LIVE_CYCLE_RECEIPT_V1" and body["status"] == "no_cycle_yet"
    assert body["row_count"] == 0 and body["rows"] == [] and body["snapshots"] == []
    assert body["error"]["code"] == "NO_CYCLE_YET" and "confirm=true" in body["error"]["message"]
    assert body["asof"][:4].isdigit() and body["asof"][-6] in "+-"

    write_bundle(root)
    refs = [bare_post(gw, f"{RUN}?confirm=true").json()["receipt"]["snapshot_ref"] for _ in range(12)]
    after = gw.http.get("/api/live/cycle/latest").json()
    assert after["status"] == "ready" and after["row_count"] == 1 and after["error"] is None
    stored_bytes = (root / KINDS["cycle"].latest_ref).read_bytes()
    stored = json.loads(stored_bytes)
    row = after["rows"][0]
    assert row == stored  # exactly as stored: every key and value ...

    def keys(d):
        return [(k, keys(v)) if isinstance(v, dict) else k for k, v in d.items()]

    assert keys(row) == keys(stored)  # ... in the stored order
    assert after["snapshots"] == refs[::-1][:10]
    # What the scripts read.
    assert row["result"] == "OK" and row["decision"] == "COMPLETED"
    assert row["bundle"]["decision"] == "PASS" and row["bundle"]["stale"] is False
    assert row["reco"]["decision"] == "GENERATED" and row["push"]["delivery_actual"] == "CONSOLE_SIMULATED"
    assert row["snapshot_ref"] == refs[-1]


def test_envelope_keeps_grpc_callers_working(gw, root):
    """The new envelope fields are additions: gRPC callers read rows/status as before."""
    import grpc

    from opsledger.v1 import cycle_pb2, cycle_pb2_grpc

    write_bundle(root)
    with grpc.insecure_channel(gw.target) as channel:
        stub = cycle_pb2_grpc.CycleServiceStub(channel)
        empty = stub.GetLatestCycle(cycle_pb2.GetLatestCycleRequest())
        assert empty.status == "no_cycle_yet" and empty.error.code == "NO_CYCLE_YET" and not empty.rows
        ran = stub.RunCycle(cycle_pb2.RunCycleRequest(confirm=True))
        latest = stub.GetLatestCycle(cycle_pb2.GetLatestCycleRequest())
    assert latest.status == "ready" and latest.rows[0] == ran.receipt and not latest.HasField("error")
    assert latest.schema == "LIVE_CYCLE_RECEIPT_V1"


def test_openapi_describes_query_confirm_and_the_envelope(gw):
    doc = gw.http.get("/openapi.json").json()
    run = doc["paths"]["/api/live/cycle/run"]["post"]
    assert [p["name"] for p in run["parameters"]] == ["confirm", "idempotency_key"]  # the scalars of RunCycleRequest
    assert run["requestBody"]["required"] is False
    latest = doc["paths"]["/api/live/cycle/latest"]["get"]["responses"]["200"]["content"]["application/json"]
    schema = doc["components"]["schemas"][latest["schema"]["$ref"].rsplit("/", 1)[1]]
    assert {"schema", "asof", "status", "row_count", "rows", "snapshots", "error"} == set(schema["properties"])


def test_curl_without_body_runs_the_cycle(gw, root):
    """The exact call the cron scripts make, through the real curl binary."""
    import shutil
    import subprocess

    write_bundle(root)
    curl = shutil.which("curl")
    assert curl, "curl not installed"
    out = subprocess.run([curl, "-sS", "-X", "POST", f"{gw.base}{RUN}?confirm=true"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["receipt"]["result"] == "OK"
    assert len(receipts(root)) == 1
    assert httpx.get(f"{gw.base}/api/live/cycle/latest").json()["row_count"] == 1
