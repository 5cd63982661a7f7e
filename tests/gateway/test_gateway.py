"""The HTTP gateway over real HTTP (uvicorn on port 0) with a real gRPC server behind."""
import uuid

import pytest

from tests.cycle.conftest import write_bundle
from tests.helpers import ledger_lines

RECONCILE = {"schema": "TICKET_SUBMIT_V1", "request_type": "REQUEST_RECONCILE",
             "payload": {"mode": "INCREMENTAL", "reason": "점검", "lookback_days": 7}}


def logs(srv):
    return ledger_lines(srv)


def submit(gw, body=None):
    r = gw.http.post("/api/tickets", json=body or RECONCILE)
    assert r.status_code == 200, r.text
    return r.json()


def test_legacy_bodies_key_for_key(gw):
    sub = submit(gw)
    assert list(sub) == ["result", "request_id", "requested_at", "status", "appended"]
    assert sub["result"] == "OK" and sub["status"] == "OPEN" and sub["appended"] is True
    rid = sub["request_id"]
    con = gw.http.post("/api/tickets/consume", json={"request_id": rid, "processor_id": "w1"}).json()
    assert con == {"result": "OK", "request_id": rid, "new_status": "IN_PROGRESS", "result_id": con["result_id"]}
    com = gw.http.post("/api/tickets/complete", json={"request_id": rid, "status": "DONE", "processor_id": "w1",
                                                      "message": "끝", "artifacts": ["reports/a.json"]}).json()
    assert list(com) == ["result", "request_id", "new_status", "result_id"] and com["new_status"] == "DONE"
    board = gw.http.get("/api/tickets/latest").json()
    assert list(board) == ["status", "schema", "asof", "row_count", "rows", "next_page_token", "total_count", "error"]
    assert board["status"] == "ready" and board["schema"] == "TICKETS_BOARD_V1" and board["error"] is None
    row = board["rows"][0]
    assert list(row) == ["request_id", "requested_at", "request_type", "payload", "trace_id", "current_status",
                         "last_message", "last_processed_at"]
    assert row["payload"] == {"mode": "INCREMENTAL", "reason": "점검", "lookback_days": 7}
    assert type(row["payload"]["lookback_days"]) is int and row["trace_id"] is None
    ticket = gw.http.get(f"/api/tickets/{rid}").json()
    assert [r["status"] for r in ticket["results"]] == ["IN_PROGRESS", "DONE"]
    assert ticket["results"][1]["artifacts"] == ["reports/a.json"]


def test_open_row_has_null_last_fields_and_replay_says_not_appended(gw):
    body = dict(RECONCILE, idempotency_key="k1")
    first = submit(gw, body)
    again = submit(gw, body)
    assert again["request_id"] == first["request_id"] and again["appended"] is False
    row = gw.http.get("/api/tickets/latest").json()["rows"][0]
    assert row["last_message"] is None and row["last_processed_at"] is None and row["current_status"] == "OPEN"


def test_second_consume_is_409_with_current_status(gw):
    rid = submit(gw)["request_id"]
    assert gw.http.post("/api/tickets/consume", json={"request_id": rid, "processor_id": "w1"}).status_code == 200
    r = gw.http.post("/api/tickets/consume", json={"request_id": rid, "processor_id": "w1"})
    assert r.status_code == 409
    body = r.json()
    assert body["result"] == "CONFLICT" and body["current_status"] == "IN_PROGRESS" and body["message"]
    assert body["code"] == "FAILED_PRECONDITION"


def test_not_found_body(gw):
    r = gw.http.get(f"/api/tickets/{uuid.uuid4()}")
    assert r.status_code == 404
    assert r.json()["result"] == "FAIL" and r.json()["message"] == "Ticket not found"


def test_latest_is_the_board_never_a_ticket(gw):
    assert gw.http.get("/api/tickets/latest").json()["schema"] == "TICKETS_BOARD_V1"


def test_paging_with_page_token_in_query(gw):
    ids = {submit(gw, {"request_type": "ACKNOWLEDGE", "payload": {"message_id": f"m{i}"}})["request_id"]
           for i in range(25)}
    seen, token = [], None
    while True:
        params = [("page_size", "10")] + ([("page_token", token)] if token else [])
        page = gw.http.get("/api/tickets/latest", params=params).json()
        seen += [r["request_id"] for r in page["rows"]]
        token = page["next_page_token"]
        if not token:
            break
    assert len(seen) == 25 and set(seen) == ids


def test_filters_in_query(gw):
    a = submit(gw)["request_id"]
    submit(gw, {"request_type": "ACKNOWLEDGE", "payload": {"message_id": "m"}})
    gw.http.post("/api/tickets/consume", json={"request_id": a})
    r = gw.http.get("/api/tickets/latest", params=[("status", "IN_PROGRESS"), ("status", "DONE")]).json()
    assert [x["request_id"] for x in r["rows"]] == [a] and r["total_count"] == 1
    r = gw.http.get("/api/tickets/latest", params={"request_type": "ACKNOWLEDGE"}).json()
    assert r["total_count"] == 1 and r["rows"][0]["request_type"] == "ACKNOWLEDGE"


def test_cycle_routes(gw, root):
    before = gw.http.get("/api/live/cycle/latest").json()
    assert before["status"] == "no_cycle_yet" and before["error"]["code"] == "NO_CYCLE_YET"
    refused = gw.http.post("/api/live/cycle/run", json={})
    assert refused.status_code == 400 and "confirm" in refused.json()["message"]
    write_bundle(root)
    run = gw.http.post("/api/live/cycle/run", json={"confirm": True})
    assert run.status_code == 200
    receipt = run.json()["receipt"]
    assert (receipt["result"], receipt["decision"], receipt["reason"]) == ("OK", "COMPLETED", "SUCCESS")
    assert receipt["push"]["send_receipt_ref"] is None
    latest = gw.http.get("/api/live/cycle/latest").json()
    assert list(latest) == ["schema", "asof", "status", "row_count", "rows", "snapshots", "error"]
    assert latest["status"] == "ready" and latest["rows"][0]["cycle_id"] == receipt["cycle_id"]
    assert latest["snapshots"] == [receipt["snapshot_ref"]]


def test_healthz_and_openapi(gw):
    assert gw.http.get("/healthz").json() == {"status": "SERVING", "store": "jsonl"}
    doc = gw.http.get("/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
    assert {"/api/tickets", "/api/tickets/consume", "/api/tickets/complete", "/api/tickets/latest",
            "/api/tickets/{request_id}", "/api/live/cycle/run", "/api/live/cycle/latest"} <= set(doc["paths"])
    assert "post" in doc["paths"]["/api/tickets"] and "get" in doc["paths"]["/api/tickets/{request_id}"]


def test_unknown_path_and_wrong_method(gw):
    r = gw.http.get("/api/nope")
    assert r.status_code == 404 and r.json()["result"] == "FAIL"
    r = gw.http.delete("/api/tickets/latest")
    assert r.status_code == 405 and r.json()["result"] == "FAIL"
    r = gw.http.get("/api/tickets/consume")
    assert r.status_code == 405


BAD = [
    ("malformed JSON", "/api/tickets", b'{"request_type": ', {"content-type": "application/json"}, 400, "not valid JSON"),
    ("array body", "/api/tickets", b"[1,2]", {"content-type": "application/json"}, 400, "JSON object"),
    ("unknown field", "/api/tickets/consume", b'{"request_id":"x","bogus":1}', {"content-type": "application/json"}, 400, "bogus"),
    ("wrong type", "/api/tickets/consume", b'{"request_id":"x","processor_id":5}', {"content-type": "application/json"}, 400, "processor_id"),
    ("unknown enum", "/api/tickets", b'{"request_type":"NOPE","payload":{}}', {"content-type": "application/json"}, 400, "request_type"),
    ("2 MiB body", "/api/tickets", b'{"request_type":"ACKNOWLEDGE","payload":{"message_id":"' + b"x" * (2 << 20) + b'"}}',
     {"content-type": "application/json"}, 413, "body over"),
    ("missing content type", "/api/tickets", b'{"request_type":"ACKNOWLEDGE","payload":{"message_id":"m"}}', {}, 415, "content-type"),
    ("text/plain", "/api/tickets", b'{"request_type":"ACKNOWLEDGE","payload":{"message_id":"m"}}', {"content-type": "text/plain"}, 415, "content-type"),
    ("invalid UUID", "/api/tickets/consume", b'{"request_id":"not-a-uuid"}', {"content-type": "application/json"}, 400, "request_id"),
    ("status OPEN", "/api/tickets/complete", b'{"request_id":"6f1c1f8e-6b51-4f8e-9a59-3b7f0a4c1d2e","status":"OPEN","message":"m"}',
     {"content-type": "application/json"}, 400, "status"),
    ("invalid UTF-8", "/api/tickets", b'{"request_type":"ACKNOWLEDGE","payload":{"message_id":"\xff\xfe"}}',
     {"content-type": "application/json"}, 400, "JSON"),
    ("payload rule", "/api/tickets", b'{"request_type":"REQUEST_RECONCILE","payload":{"mode":"FULL"}}',
     {"content-type": "application/json"}, 400, "payload.reason"),
]


@pytest.mark.parametrize("name,path,body,headers,status,needle", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_4xx_and_writes_nothing(gw, name, path, body, headers, status, needle):
    submit(gw)
    before = logs(gw)
    r = gw.http.post(path, content=body, headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["result"] == "FAIL" and needle in r.json()["message"]
    assert logs(gw) == before


def test_non_ascii_authorization_header_is_400_not_500(gw):
    before = logs(gw)
    r = gw.http.post("/api/tickets", json=RECONCILE, headers={"Authorization": "Bearer \xe9t\xe9".encode("latin-1")})
    assert r.status_code == 400 and "authorization" in r.json()["message"]
    assert logs(gw) == before


def test_unknown_query_parameter_is_400(gw):
    r = gw.http.get("/api/tickets/latest", params={"colour": "red"})
    assert r.status_code == 400 and "colour" in r.json()["message"]
    r = gw.http.get("/api/tickets/latest", params={"page_size": "many"})
    assert r.status_code == 400 and "page_size" in r.json()["message"]


def test_consume_next_and_reaper_routes(gw):
    empty = gw.http.post("/api/tickets/consume-next", json={"processor_id": "w1", "wait_seconds": 0.1}).json()
    assert empty["result"] == "EMPTY" and empty["claimed"] is False and empty["ticket"] is None
    rid = submit(gw)["request_id"]
    got = gw.http.post("/api/tickets/consume-next", json={"processor_id": "w1",
                                                          "request_types": ["REQUEST_RECONCILE"]}).json()
    assert got["claimed"] is True and got["request_id"] == rid and got["ticket"]["current_status"] == "IN_PROGRESS"
    assert got["ticket"]["payload"]["lookback_days"] == 7
    dry = gw.http.post("/api/tickets/reaper/run", json={"dry_run": True}).json()
    assert dry["report"]["schema"] == "TICKET_REAPER_REPORT_V1" and dry["report"]["decision"] == "NONE"
    assert dry["snapshot_ref"] is None
    bad = gw.http.post("/api/tickets/reaper/run", json={"max_clean": 999999})
    assert bad.status_code == 400 and "max_clean" in bad.json()["message"]


def test_gateway_socket_is_tcp_so_replies_are_not_delayed(gw):
    # asyncio only sets TCP_NODELAY on sockets created with IPPROTO_TCP; without
    # it every keep-alive reply waited for a delayed ACK (~40 ms).
    import socket

    listening = gw.app._http.servers[0].sockets[0]
    assert listening.proto == socket.IPPROTO_TCP
