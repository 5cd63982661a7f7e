"""TicketService through real generated stubs on a real grpc.aio server (port 0)."""
import uuid

import grpc
import orjson
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from opsledger.v1 import tickets_pb2 as pb
from tests.helpers import ledger_lines

RECONCILE = {"mode": "FULL", "reason": "r"}


def details(exc: grpc.RpcError):
    status = rpc_status.from_call(exc)
    out = []
    for d in status.details:
        for kind in (error_details_pb2.BadRequest, error_details_pb2.ErrorInfo, error_details_pb2.ResourceInfo):
            if d.Is(kind.DESCRIPTOR):
                m = kind()
                d.Unpack(m)
                out.append(m)
    return out


def test_submit_consume_complete_board_ticket(server, client):
    sub = client.submit("REQUEST_RECONCILE", {"mode": "INCREMENTAL", "reason": "월말 재조정 ✓", "lookback_days": 7},
                        trace_id="trace-1")
    assert sub.result == "OK" and sub.status == pb.TicketStatus.OPEN and sub.appended
    rid = sub.request_id
    assert str(uuid.UUID(rid)) == rid
    con = client.consume(rid, "worker-1")
    assert con.new_status == pb.TicketStatus.IN_PROGRESS
    com = client.complete(rid, "DONE", "worker-1", "끝났습니다 — done",
                          ["reports/x/out.json", "state/tickets/ticket_results.jsonl:line1"])
    assert com.new_status == pb.TicketStatus.DONE and com.result_id != con.result_id
    board = client.board()
    assert board.status == "ready" and board.schema == "TICKETS_BOARD_V1" and board.row_count == 1
    row = json_format.MessageToDict(board.rows[0], preserving_proto_field_name=True)
    assert row["current_status"] == "DONE" and row["last_message"] == "끝났습니다 — done"
    assert row["trace_id"] == "trace-1"
    t = client.ticket(rid)
    assert [r.status for r in t.results] == [pb.TicketStatus.IN_PROGRESS, pb.TicketStatus.DONE]
    assert list(t.results[1].artifacts) == ["reports/x/out.json", "state/tickets/ticket_results.jsonl:line1"]
    # the log keeps the integer and the Korean text exactly
    stored = orjson.loads(ledger_lines(server)[0][0])
    assert stored["payload"] == {"mode": "INCREMENTAL", "reason": "월말 재조정 ✓", "lookback_days": 7}
    assert type(stored["payload"]["lookback_days"]) is int
    assert "월말".encode() in ledger_lines(server)[0][0]  # UTF-8, not \u escapes


def test_invalid_argument_names_each_field_and_writes_nothing(server, client):
    client.submit("ACKNOWLEDGE", {"message_id": "m"})
    before = ledger_lines(server)
    with pytest.raises(grpc.RpcError) as info:
        client.submit("REQUEST_REPORTS", {"mode": "REGEN", "scope": "X", "reason": "r", "bogus": 1})
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    (bad,) = details(info.value)
    assert {v.field for v in bad.field_violations} == {"payload.scope", "payload.bogus"}
    with pytest.raises(grpc.RpcError) as info:
        client.consume("not-a-uuid")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(info.value)[0].field_violations[0].field == "request_id"
    with pytest.raises(grpc.RpcError) as info:
        client.complete(str(uuid.uuid4()), "OPEN")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for ref in ["../etc/passwd", "/abs", "file:x", "a\\b", "%2e%2e/x", "a//b"]:
        with pytest.raises(grpc.RpcError) as info:
            client.complete(str(uuid.uuid4()), "DONE", artifacts=[ref])
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, ref
        assert details(info.value)[0].field_violations[0].field == "artifacts[0]"
    assert ledger_lines(server) == before


def test_unknown_ticket_is_not_found(client):
    rid = str(uuid.uuid4())
    for call in (lambda: client.consume(rid), lambda: client.ticket(rid), lambda: client.complete(rid, "DONE")):
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert details(info.value)[0].resource_name == rid


def test_refused_transition_carries_who_won(server, client):
    rid = client.submit("ACKNOWLEDGE", {"message_id": "m"}).request_id
    first = client.consume(rid, "w1")
    before = ledger_lines(server)
    with pytest.raises(grpc.RpcError) as info:
        client.consume(rid, "w2")
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    (err,) = details(info.value)
    assert err.reason == "ILLEGAL_TRANSITION"
    assert err.metadata["current_status"] == "IN_PROGRESS"
    assert err.metadata["last_processor_id"] == "w1"
    assert err.metadata["last_result_id"] == first.result_id
    client.complete(rid, "FAILED", "w1", "boom")
    with pytest.raises(grpc.RpcError) as info:
        client.complete(rid, "DONE", "w1")
    assert details(info.value)[0].metadata["current_status"] == "FAILED"
    assert len(ledger_lines(server)[1]) == 2
    assert before[0] == ledger_lines(server)[0]


def test_paging_2500_without_loss_or_duplicates(client):
    ids = {client.submit("ACKNOWLEDGE", {"message_id": f"m{i}"}).request_id for i in range(2500)}
    seen, token, pages = [], "", 0
    while True:
        page = client.board(page_size=300, page_token=token)
        seen += [r.request_id for r in page.rows]
        assert page.total_count == 2500
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages == 9 and len(seen) == 2500 and set(seen) == ids
    # newest first: equal seconds are ordered by submission, later first
    all_rows = client.board(page_size=5000).rows
    assert [r.request_id for r in all_rows] == seen


def test_board_filters_and_token_bound_to_filter(client):
    ids = [client.submit("ACKNOWLEDGE", {"message_id": f"m{i}"}).request_id for i in range(6)]
    rc = client.submit("REQUEST_RECONCILE", RECONCILE).request_id
    for rid in ids[:3]:
        client.consume(rid)
    client.consume(rc)
    page = client.board(statuses=["IN_PROGRESS"], types=["ACKNOWLEDGE"], page_size=2)
    assert page.total_count == 3 and page.row_count == 2
    rest = client.board(statuses=["IN_PROGRESS"], types=["ACKNOWLEDGE"], page_size=2, page_token=page.next_page_token)
    assert {r.request_id for r in page.rows} | {r.request_id for r in rest.rows} == set(ids[:3])
    assert client.board(statuses=["IN_PROGRESS"]).total_count == 4
    assert client.board(statuses=["OPEN", "IN_PROGRESS"]).total_count == 7
    with pytest.raises(grpc.RpcError) as info:
        client.board(statuses=["OPEN"], page_token=page.next_page_token)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for bad in ({"page_size": 5001}, {"page_token": "garbage!"}):
        with pytest.raises(grpc.RpcError) as info:
            client.board(**bad)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_idempotent_submit_through_rpc(server, client):
    a = client.submit("ACKNOWLEDGE", {"message_id": "m"}, idempotency_key="same")
    b = client.submit("ACKNOWLEDGE", {"message_id": "m"}, idempotency_key="same")
    assert a.request_id == b.request_id and a.appended and not b.appended
    assert len(ledger_lines(server)[0]) == 1


def test_health_and_reflection_are_on(server):
    with grpc.insecure_channel(server.target) as ch:
        resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
        resp = health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service="opsledger.v1.TicketService"), timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_store_failure_flips_health_and_answers_unavailable(server, client):
    rid = client.submit("ACKNOWLEDGE", {"message_id": "m"}).request_id

    def broken(*_a):
        raise OSError(5, "Input/output error")

    server.app.store.sync = broken
    with pytest.raises(grpc.RpcError) as info:
        client.consume(rid)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    with grpc.insecure_channel(server.target) as ch:
        import time
        for _ in range(50):
            resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
            if resp.status == health_pb2.HealthCheckResponse.NOT_SERVING:
                break
            time.sleep(0.05)
        assert resp.status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert client.board().total_count == 1  # reads still work



def test_completion_refs_are_checked_without_reading_the_artifact_store(tmp_path, pg_url):
    """A completion's refs need not exist (SPEC §5): their check reads no artifact row. With the
    artifacts table locked by another session, a completion naming 64 refs still goes through;
    a ref breaking the syntax is still refused."""
    import psycopg

    from opsledger.client.ledger_client import OpsledgerClient
    from tests.helpers import ServerThread

    srv = ServerThread(tmp_path / "root", store=pg_url).start()
    locker = psycopg.connect(pg_url)
    try:
        with OpsledgerClient(srv.target, retries=0, timeout=30) as c:
            rid = c.submit("ACKNOWLEDGE", {"message_id": "m"}).request_id
            c.consume(rid, "w1")
            locker.execute("LOCK TABLE artifacts IN ACCESS EXCLUSIVE MODE")  # held until rollback
            refs = [f"reports/run{i}/out.json" for i in range(64)]
            assert c.complete(rid, "DONE", "w1", "ok", refs).new_status == pb.TicketStatus.DONE
            with pytest.raises(grpc.RpcError) as info:
                c.complete(str(uuid.uuid4()), "DONE", "w1", "ok", ["reports/ok.json", "../escape.json"])
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert details(info.value)[0].field_violations[0].field == "artifacts[1]"
            locker.rollback()
            assert list(c.ticket(rid).results[1].artifacts) == refs
    finally:
        locker.close()
        srv.stop()
