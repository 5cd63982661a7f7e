"""ResolveEvidence through the real grpcurl binary, found by server reflection."""
import json

from tests.cycle.conftest import write_bundle
from tests.ledger.test_grpcurl import GRPCURL, grpcurl

METHOD = "opsledger.v1.EvidenceService/ResolveEvidence"


def test_grpcurl_resolves_refs_with_the_right_codes(ev, root):
    assert GRPCURL, "grpcurl binary not installed"
    assert "opsledger.v1.EvidenceService" in grpcurl(ev.target, "list").stdout.split()
    write_bundle(root)
    receipt = ev.http.post("/api/live/cycle/run?confirm=true").json()["receipt"]

    found = grpcurl(ev.target, METHOD, data={"ref": receipt["snapshot_ref"]})
    assert found.returncode == 0, found.stderr
    body = json.loads(found.stdout)
    assert body["status"] == "ready" and body["schema"] == "EVIDENCE_VIEW_V1" and body["row_count"] == 1
    assert body["rows"][0]["data"] == json.loads((root / receipt["snapshot_ref"]).read_bytes())
    assert body["rows"][0]["source"] == {"kind": "JSON_FILE", "path": receipt["snapshot_ref"]}

    bad = grpcurl(ev.target, METHOD, data={"ref": "../../etc/passwd"})
    assert bad.returncode != 0 and "InvalidArgument" in bad.stderr and "ref:" in bad.stderr
    assert "root:" not in bad.stdout + bad.stderr
    missing = grpcurl(ev.target, METHOD, data={"ref": "state/tickets/ticket_results.jsonl:line42"})
    assert missing.returncode != 0 and "NotFound" in missing.stderr

    rid = ev.http.post("/api/tickets", json={"request_type": "ACKNOWLEDGE", "payload": {"message_id": "m"}}).json()
    ev.http.post("/api/tickets/consume", json={"request_id": rid["request_id"]})
    ticket = json.loads(grpcurl(ev.target, "opsledger.v1.TicketService/GetTicket",
                                data={"request_id": rid["request_id"]}).stdout)
    line = grpcurl(ev.target, METHOD, data={"ref": ticket["result_refs"][0]})
    assert json.loads(line.stdout)["rows"][0]["data"]["result_id"] == ticket["results"][0]["result_id"]
