"""Retry-safe transitions (AIP-155 tokens) through the real gRPC server, across restarts.

"The first attempt landed but its answer was lost" is made real by a
service method that does its work and then answers UNAVAILABLE once, as a
dropped connection after the write would: the client library retries with
the token it chose for the call, and must get the first attempt's answer.
"""
import grpc
import orjson
import pytest

from opsledger.client.ledger_client import OpsledgerClient
from opsledger.server.cycle.service import CycleService
from opsledger.server.ledger.service import TicketService
from tests.cycle.conftest import write_bundle
from tests.helpers import ServerThread, ledger_lines


def results(srv) -> list[dict]:
    return [orjson.loads(x) for x in ledger_lines(srv)[1]]


@pytest.fixture
def first_server(root):
    """A server the test stops itself (to restart on the same root)."""
    srv = ServerThread(root).start()
    client = OpsledgerClient(srv.target, retries=0)
    yield srv, client
    client.close()
    if srv.loop.is_running():
        srv.stop()


def restart(srv: ServerThread, root) -> ServerThread:
    srv.stop()
    return ServerThread(root).start()


def lose_first_answer(monkeypatch, servicer, method: str, lost: list) -> None:
    """The method runs for real; its first answer is replaced by UNAVAILABLE."""
    real = getattr(servicer, method)

    async def answer_lost_once(self, request, context):
        response = await real(self, request, context)
        if not lost:
            lost.append(response)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "connection dropped after the write (test)")
        return response

    monkeypatch.setattr(servicer, method, answer_lost_once)


def test_consume_and_complete_retried_with_their_token_answer_the_first_attempt(first_server, root):
    server, client = first_server
    rid = client.submit("ACKNOWLEDGE", {"message_id": "m"}).request_id
    first = client.consume(rid, "w1", idempotency_key="consume-1")
    again = client.consume(rid, "w1", idempotency_key="consume-1")
    assert again == first
    done = client.complete(rid, "DONE", "w1", "ok", ["reports/x.json"], idempotency_key="complete-1")
    assert client.complete(rid, "DONE", "w1", "ok", ["reports/x.json"], idempotency_key="complete-1") == done
    assert [r["result_id"] for r in results(server)] == [first.result_id, done.result_id]
    with pytest.raises(grpc.RpcError) as info:  # a new token is a new call: the conflict it always was
        client.consume(rid, "w1", idempotency_key="consume-2")
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as info:  # the same token for a different call
        client.complete(rid, "DONE", "w1", "other message", idempotency_key="complete-1")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "idempotency_key" in info.value.details()
    lines = ledger_lines(server)
    server = restart(server, root)
    try:
        with OpsledgerClient(server.target, retries=0) as c:
            assert c.consume(rid, "w1", idempotency_key="consume-1") == first  # tokens outlive a restart
            assert c.complete(rid, "DONE", "w1", "ok", ["reports/x.json"], idempotency_key="complete-1") == done
        assert ledger_lines(server) == lines
    finally:
        server.stop()


def test_consume_next_retried_with_its_token_claims_the_same_ticket(first_server, root):
    server, client = first_server
    first_rid = client.submit("ACKNOWLEDGE", {"message_id": "a"}).request_id
    claim = client.consume_next("w1", idempotency_key="claim-1")
    assert claim.claimed and claim.request_id == first_rid
    second_rid = client.submit("ACKNOWLEDGE", {"message_id": "b"}).request_id
    assert client.consume_next("w1", idempotency_key="claim-1") == claim  # not the OPEN second ticket
    other = client.consume_next("w2", idempotency_key="claim-1")  # another worker's token is its own
    assert other.request_id == second_rid
    server = restart(server, root)
    try:
        with OpsledgerClient(server.target, retries=0) as c:
            again = c.consume_next("w1", idempotency_key="claim-1")
        assert (again.request_id, again.result_id) == (claim.request_id, claim.result_id)
        assert len(results(server)) == 2
    finally:
        server.stop()


def test_token_rule_is_enforced(client):
    rid = client.submit("ACKNOWLEDGE", {"message_id": "m"}).request_id
    with pytest.raises(grpc.RpcError) as info:
        client.consume(rid, "w1", idempotency_key="x" * 129)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "idempotency_key: must be 1-128 characters" in info.value.details()


@pytest.mark.parametrize("method", ["ConsumeTicket", "CompleteTicket", "ConsumeNext"])
def test_the_client_retries_a_lost_answer_with_its_own_token_and_gets_the_first_result(monkeypatch, root, method):
    lost: list = []
    lose_first_answer(monkeypatch, TicketService, method, lost)
    srv = ServerThread(root).start()
    try:
        with OpsledgerClient(srv.target, retries=3, backoff=0.01) as c:
            rid = c.submit("ACKNOWLEDGE", {"message_id": "m"}).request_id
            if method == "ConsumeTicket":
                answer = c.consume(rid, "w1")
            elif method == "CompleteTicket":
                lost.append("not this call")  # let the consume through
                c.consume(rid, "w1")
                lost.clear()
                answer = c.complete(rid, "DONE", "w1", "ok")
            else:
                answer = c.consume_next("w1")
        assert lost and lost[0] == answer  # the retry got exactly the lost answer
        recorded = results(srv)
        assert [r["result_id"] for r in recorded][-1] == answer.result_id
        assert len(recorded) == (2 if method == "CompleteTicket" else 1)  # one line per logical call
    finally:
        srv.stop()


def test_run_cycle_retried_with_its_token_answers_the_same_receipt(monkeypatch, root):
    write_bundle(root)
    lost: list = []
    lose_first_answer(monkeypatch, CycleService, "RunCycle", lost)
    srv = ServerThread(root).start()
    try:
        with OpsledgerClient(srv.target, retries=3, backoff=0.01) as c:
            receipt = c.run_cycle(idempotency_key="cycle-1").receipt
            assert lost and lost[0].receipt == receipt  # the client's retry got the first run's receipt
            assert c.run_cycle(idempotency_key="cycle-1").receipt == receipt
            fresh = c.run_cycle().receipt  # a new call runs a new cycle
        assert fresh.cycle_id != receipt.cycle_id
        snapshots = sorted((root / "reports/live/cycle/snapshots").iterdir())
        assert len(snapshots) == 2  # two cycles ran, not three or four
    finally:
        srv.stop()
    srv = ServerThread(root).start()
    try:
        with OpsledgerClient(srv.target, retries=0) as c:
            assert c.run_cycle(idempotency_key="cycle-1").receipt == receipt
        assert len(list((root / "reports/live/cycle/snapshots").iterdir())) == 2
    finally:
        srv.stop()


def test_http_callers_send_the_token_in_the_body(root):
    import httpx

    srv = ServerThread(root, http_addr="127.0.0.1:0").start()
    try:
        base = f"http://127.0.0.1:{srv.app.http_port}"
        rid = httpx.post(base + "/api/tickets", json={
            "schema": "TICKET_SUBMIT_V1", "request_type": "ACKNOWLEDGE", "payload": {"message_id": "m"}}).json()["request_id"]
        body = {"request_id": rid, "processor_id": "w1", "idempotency_key": "http-1"}
        first = httpx.post(base + "/api/tickets/consume", json=body)
        again = httpx.post(base + "/api/tickets/consume", json=body)
        assert first.status_code == again.status_code == 200 and first.json() == again.json()
        conflict = httpx.post(base + "/api/tickets/consume", json={**body, "idempotency_key": "http-2"})
        assert conflict.status_code == 409
        assert len(ledger_lines(srv)[1]) == 1
    finally:
        srv.stop()
