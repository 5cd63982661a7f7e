"""The gateway holds HTTP bodies to the contract's shape (issue 12: E16, B7, item 11, A1).

Real uvicorn on port 0, real gRPC server behind it, real files.
"""
import json
import re
import socket
import subprocess
import time

import pytest

from opsledger.client.ledger_client import OpsledgerClient
from tests.gateway.test_gateway import RECONCILE, logs, submit
from tests.helpers import REPO, opsledger_cmd

JSON = {"content-type": "application/json"}


def bad_request_field(body: dict) -> str:
    (detail,) = [d for d in body["details"] if d["@type"] == "google.rpc.BadRequest"]
    return detail["field_violations"][0]["field"]


REFUSED = [
    ("enum number", "/api/tickets", b'{"request_type": 3, "payload": {"message_id": "m"}}', "request_type"),
    ("enum number in a list", "/api/tickets/consume-next", b'{"request_types": [1]}', "request_types[0]"),
    ("lowerCamelCase name", "/api/tickets", b'{"requestType": "ACKNOWLEDGE", "payload": {"message_id": "m"}}',
     "requestType"),
    ("lowerCamelCase nested", "/api/tickets/consume", b'{"requestId": "6f1c1f8e-6b51-4f8e-9a59-3b7f0a4c1d2e"}',
     "requestId"),
    ("complete without message", "/api/tickets/complete",
     b'{"request_id": "6f1c1f8e-6b51-4f8e-9a59-3b7f0a4c1d2e", "status": "DONE"}', "message"),
    ("complete with null message", "/api/tickets/complete",
     b'{"request_id": "6f1c1f8e-6b51-4f8e-9a59-3b7f0a4c1d2e", "status": "DONE", "message": null}', "message"),
    ("number as string field", "/api/tickets/consume", b'{"request_id": 7}', "request_id"),
    ("string as number", "/api/tickets/consume-next", b'{"wait_seconds": "5"}', "wait_seconds"),
    ("bool as integer", "/api/tickets/reaper/run", b'{"max_clean": true}', "max_clean"),
    ("duplicate top-level key", "/api/tickets",
     b'{"request_type": "ACKNOWLEDGE", "request_type": "REQUEST_RECONCILE", "payload": {"message_id": "m"}}',
     "request_type"),
    ("duplicate key in payload", "/api/tickets",
     b'{"request_type": "ACKNOWLEDGE", "payload": {"message_id": "a", "message_id": "b"}}', "payload.message_id"),
    ("duplicate key after an equal object", "/api/tickets",
     b'{"request_type": "ACKNOWLEDGE", "payload": {"a": {"k": 1}, "b": {"k": 1, "k": 1}}}', "payload.b.k"),
    ("duplicate key in a cycle body", "/api/live/cycle/run", b'{"confirm": false, "confirm": true}', "confirm"),
    ("not JSON", "/api/tickets", b'{"request_type": ', "body"),
    ("not an object", "/api/tickets", b'[1]', "body"),
]


@pytest.mark.parametrize("name,path,raw,field", REFUSED, ids=[r[0] for r in REFUSED])
def test_off_contract_bodies_are_400_naming_the_field(gw, root, name, path, raw, field):
    submit(gw)
    before = logs(gw)
    r = gw.http.post(path, content=raw, headers=JSON)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["result"] == "FAIL" and body["code"] == "INVALID_ARGUMENT"
    assert bad_request_field(body) == field, body
    assert body["message"].startswith(field + ":"), body
    assert logs(gw) == before


def test_complete_with_a_message_still_works_and_empty_message_is_a_message(gw):
    rid = submit(gw)["request_id"]
    assert gw.http.post("/api/tickets/consume", json={"request_id": rid}).status_code == 200
    r = gw.http.post("/api/tickets/complete", json={"request_id": rid, "status": "DONE", "message": ""})
    assert r.status_code == 200, r.text
    assert gw.http.get(f"/api/tickets/{rid}").json()["row"]["last_message"] == ""


def test_openapi_says_message_is_required_and_enums_are_names(gw):
    doc = gw.http.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    assert "message" in schemas["opsledger.v1.CompleteTicketRequest.Input"]["required"]
    request_type = schemas["opsledger.v1.SubmitTicketRequest.Input"]["properties"]["request_type"]
    assert "VALUE_UNSPECIFIED" not in request_type["enum"]


def test_empty_trace_id_is_stored_null_never_empty(gw, root):
    rid = submit(gw, dict(RECONCILE, trace_id=""))["request_id"]
    assert gw.http.get(f"/api/tickets/{rid}").json()["row"]["trace_id"] is None
    line = json.loads((root / "state/tickets/ticket_requests.jsonl").read_text().splitlines()[-1])
    assert line["request_id"] == rid and line["trace_id"] is None


def test_empty_consume_next_has_no_value_unspecified(gw):
    r = gw.http.post("/api/tickets/consume-next", json={"wait_seconds": 0})
    assert r.status_code == 200
    body = r.json()
    assert body["claimed"] is False and body["new_status"] is None and body["ticket"] is None
    assert "VALUE_UNSPECIFIED" not in r.text


def test_refusal_details_on_an_open_ticket_carry_null(gw):
    rid = submit(gw)["request_id"]
    r = gw.http.post("/api/tickets/complete", json={"request_id": rid, "status": "DONE", "message": "m"})
    assert r.status_code == 409
    (info,) = [d for d in r.json()["details"] if d["@type"] == "google.rpc.ErrorInfo"]
    meta = info["metadata"]
    assert meta["current_status"] == "OPEN" and meta["request_id"] == rid
    assert meta["last_processor_id"] is None and meta["last_result_id"] is None
    assert '""' not in r.text


def test_body_small_as_json_but_over_the_limit_as_protobuf_is_413(gw, root):
    # ~600 KiB of JSON zeros: each is 11+ bytes as a protobuf Value, so > 1 MiB encoded.
    zeros = b",".join([b"0"] * 300_000)
    raw = b'{"request_type": "ACKNOWLEDGE", "payload": {"message_id": "m", "n": [' + zeros + b"]}}"
    assert len(raw) < 1 << 20
    before = logs(gw)
    r = gw.http.post("/api/tickets", content=raw, headers=JSON)
    assert r.status_code == 413, r.text
    assert r.json()["code"] == "RESOURCE_EXHAUSTED" and r.json()["message"].startswith("body:")
    assert logs(gw) == before


def _counted(gw, method: str) -> int:
    text = gw.http.get("/metrics").text
    return sum(int(float(v)) for v in re.findall(rf'opsledger_rpcs_total{{code="\w+",method="{method}"}} (\S+)', text))


def test_http_long_poll_that_disconnects_claims_nothing(gw):
    """A1: the client leaves; its upstream ConsumeNext is cancelled, so the next ticket stays OPEN."""
    body = json.dumps({"processor_id": "gone", "wait_seconds": 60}).encode()
    sock = socket.create_connection(("127.0.0.1", gw.app.http_port))
    sock.sendall(b"POST /api/tickets/consume-next HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                 b"content-length: %d\r\n\r\n%s" % (len(body), body))
    time.sleep(0.5)  # let the long-poll reach the server (it waits up to 60 s)
    assert _counted(gw, "ConsumeNext") == 0
    sock.close()
    deadline = time.monotonic() + 20
    while _counted(gw, "ConsumeNext") == 0:  # the cancelled call has ended on the server
        assert time.monotonic() < deadline, "the gateway never cancelled the upstream long-poll"
        time.sleep(0.05)
    with OpsledgerClient(gw.target, retries=0, timeout=10) as c:
        rid = c.submit("ACKNOWLEDGE", {"message_id": "after-disconnect"}).request_id
        assert c.ticket(rid).row.current_status == 1  # OPEN: nobody claimed it for the vanished caller
        claimed = c.consume_next("present", wait_seconds=0)
        assert claimed.claimed and claimed.request_id == rid


def test_cli_refuses_a_payload_with_a_duplicate_key(gw, root):
    """Item 11 on the CLI: the JSON it accepts is held to the same rule as HTTP bodies."""
    submit(gw)
    before = logs(gw)
    out = subprocess.run(opsledger_cmd("submit", "--target", gw.target, "--type", "ACKNOWLEDGE",
                                       "--payload", '{"message_id": "a", "message_id": "b"}'),
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "message_id" in out.stderr and "duplicate key" in out.stderr and "Traceback" not in out.stderr
    assert logs(gw) == before
    strategy = root / "dup-strategy.json"
    strategy.write_text('{"schema": "x", "schema": "y"}')
    out = subprocess.run(opsledger_cmd("bundle", "publish", "--root", str(root), str(strategy)),
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "schema" in out.stderr and "duplicate key" in out.stderr
