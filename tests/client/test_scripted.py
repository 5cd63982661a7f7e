"""The sync client and the worker against scripted replies (grpcio-testing fake channel)."""
from concurrent.futures import ThreadPoolExecutor

import grpc
import grpc_testing
import pytest
from google.protobuf import message_factory

from opsledger.client.ledger_client import OpsledgerClient
from opsledger.client.worker import Worker
from opsledger.v1 import cycle_pb2
from opsledger.v1 import tickets_pb2 as pb

TICKETS = pb.DESCRIPTOR.services_by_name["TicketService"]
CYCLES = cycle_pb2.DESCRIPTOR.services_by_name["CycleService"]
RID = "6f1c1f8e-6b51-4f8e-9a59-3b7f0a4c1d2e"


@pytest.fixture
def fake():
    channel = grpc_testing.channel([TICKETS, CYCLES], grpc_testing.strict_real_time())
    client = OpsledgerClient(channel=channel, token="t0ken", retries=3)
    client.sleeps = []
    client.sleep = client.sleeps.append  # no real waiting between retries
    pool = ThreadPoolExecutor(2)
    yield channel, client, pool
    pool.shutdown(wait=False, cancel_futures=True)


def method(name):
    return TICKETS.methods_by_name[name]


def reply(rpc):
    return message_factory.GetMessageClass(rpc.output_type)()


def test_unavailable_is_retried_with_backoff_then_answered(fake):
    channel, client, pool = fake
    result = pool.submit(client.ticket, RID)
    for _ in range(2):
        metadata, request, rpc = channel.take_unary_unary(method("GetTicket"))
        assert request.request_id == RID and ("authorization", "Bearer t0ken") in metadata
        rpc.terminate(pb.GetTicketResponse(), (), grpc.StatusCode.UNAVAILABLE, "server restarting")
    _, _, rpc = channel.take_unary_unary(method("GetTicket"))
    rpc.terminate(pb.GetTicketResponse(row=pb.BoardRow(request_id=RID)), (), grpc.StatusCode.OK, "")
    assert result.result(5).row.request_id == RID
    assert len(client.sleeps) == 2 and client.sleeps[1] > client.sleeps[0] * 0.5


@pytest.mark.parametrize("call, rpc_name", [
    (lambda c: c.submit("ACKNOWLEDGE", {"message_id": "m"}), "SubmitTicket"),
    (lambda c: c.reap(), "ReapStaleTickets"),
])
def test_a_write_without_a_token_is_never_repeated(fake, call, rpc_name):
    # UNAVAILABLE from the transport may follow a call the server carried out.
    channel, client, pool = fake
    result = pool.submit(call, client)
    service = CYCLES if rpc_name == "RunCycle" else TICKETS
    _, _, rpc = channel.take_unary_unary(service.methods_by_name[rpc_name])
    rpc.terminate(reply(service.methods_by_name[rpc_name]), (),
                  grpc.StatusCode.UNAVAILABLE, "connection reset")
    with pytest.raises(grpc.RpcError) as info:
        result.result(5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE and client.sleeps == []


@pytest.mark.parametrize("call, rpc_name", [
    (lambda c: c.submit("ACKNOWLEDGE", {"message_id": "m"}, idempotency_key="k1"), "SubmitTicket"),
    (lambda c: c.reap(dry_run=True), "ReapStaleTickets"),
    # The transitions and RunCycle carry a token the client picks once per call.
    (lambda c: c.consume(RID, "w1"), "ConsumeTicket"),
    (lambda c: c.complete(RID, "DONE", "w1", "ok"), "CompleteTicket"),
    (lambda c: c.consume_next("w1"), "ConsumeNext"),
    (lambda c: c.run_cycle(), "RunCycle"),
])
def test_a_write_that_is_safe_to_repeat_is_retried(fake, call, rpc_name):
    channel, client, pool = fake
    result = pool.submit(call, client)
    service = CYCLES if rpc_name == "RunCycle" else TICKETS
    _, first, rpc = channel.take_unary_unary(service.methods_by_name[rpc_name])
    rpc.terminate(reply(service.methods_by_name[rpc_name]), (), grpc.StatusCode.UNAVAILABLE, "down")
    _, again, rpc = channel.take_unary_unary(service.methods_by_name[rpc_name])
    assert again == first  # the same request, token and all
    if rpc_name != "ReapStaleTickets":
        assert first.idempotency_key  # a token was set
    rpc.terminate(reply(service.methods_by_name[rpc_name]), (), grpc.StatusCode.OK, "")
    result.result(5)
    assert len(client.sleeps) == 1


def test_each_logical_call_gets_its_own_token(fake):
    channel, client, pool = fake
    tokens = []
    for _ in range(2):
        result = pool.submit(client.consume, RID, "w1")
        _, request, rpc = channel.take_unary_unary(method("ConsumeTicket"))
        tokens.append(request.idempotency_key)
        rpc.terminate(pb.ConsumeTicketResponse(), (), grpc.StatusCode.OK, "")
        result.result(5)
    assert len(set(tokens)) == 2 and all(tokens)


def test_other_codes_are_answers_not_retried(fake):
    channel, client, pool = fake
    result = pool.submit(client.consume, RID, "w1")
    _, _, rpc = channel.take_unary_unary(method("ConsumeTicket"))
    rpc.terminate(pb.ConsumeTicketResponse(), (), grpc.StatusCode.FAILED_PRECONDITION, "already IN_PROGRESS")
    with pytest.raises(grpc.RpcError) as info:
        result.result(5)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION and client.sleeps == []


def test_retries_give_up_after_the_limit(fake):
    channel, client, pool = fake
    result = pool.submit(client.board)
    for _ in range(4):
        _, _, rpc = channel.take_unary_unary(method("GetBoard"))
        rpc.terminate(pb.GetBoardResponse(), (), grpc.StatusCode.UNAVAILABLE, "down")
    with pytest.raises(grpc.RpcError) as info:
        result.result(5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE and len(client.sleeps) == 3


def claimed(request_type="ACKNOWLEDGE"):
    row = pb.BoardRow(request_id=RID, request_type=pb.RequestType.Value.Value(request_type),
                      current_status=pb.TicketStatus.IN_PROGRESS)
    row.payload.update({"message_id": "m"})
    return pb.ConsumeNextResponse(result="OK", claimed=True, request_id=RID,
                                  new_status=pb.TicketStatus.IN_PROGRESS, result_id="r1", ticket=row)


def test_worker_records_mock_result_and_survives_a_reaped_ticket(fake):
    channel, client, pool = fake
    worker = Worker(client, "w1", wait_seconds=1)
    done = pool.submit(worker.run_once)
    _, request, rpc = channel.take_unary_unary(method("ConsumeNext"))
    assert request.processor_id == "w1" and request.wait_seconds == 1
    rpc.terminate(claimed(), (), grpc.StatusCode.OK, "")
    _, request, rpc = channel.take_unary_unary(method("CompleteTicket"))
    assert request.status == pb.TicketStatus.DONE and request.message == "[MOCK_ONLY] Simulated ACKNOWLEDGE"
    rpc.terminate(pb.CompleteTicketResponse(), (), grpc.StatusCode.FAILED_PRECONDITION, "ticket is FAILED")
    assert done.result(5) is True and worker.handled == 0


def test_worker_runs_a_cycle_for_live_cycle_tickets(fake):
    channel, client, pool = fake
    worker = Worker(client, "w1", wait_seconds=1)
    done = pool.submit(worker.run_once)
    _, _, rpc = channel.take_unary_unary(method("ConsumeNext"))
    rpc.terminate(claimed("REQUEST_LIVE_CYCLE"), (), grpc.StatusCode.OK, "")
    _, request, rpc = channel.take_unary_unary(CYCLES.methods_by_name["RunCycle"])
    assert request.confirm is True
    receipt = cycle_pb2.Receipt(cycle_id="c1", result=cycle_pb2.CycleResult.FAILED,
                                decision=cycle_pb2.CycleDecision.BLOCKED, reason=cycle_pb2.CycleReason.BUNDLE_FAIL,
                                snapshot_ref="reports/live/cycle/snapshots/live_cycle_20260101_000000.json")
    rpc.terminate(cycle_pb2.RunCycleResponse(receipt=receipt), (), grpc.StatusCode.OK, "")
    _, request, rpc = channel.take_unary_unary(method("CompleteTicket"))
    assert request.status == pb.TicketStatus.FAILED
    assert list(request.artifacts) == [receipt.snapshot_ref] and "BUNDLE_FAIL" in request.message
    rpc.terminate(pb.CompleteTicketResponse(result="OK"), (), grpc.StatusCode.OK, "")
    assert done.result(5) is True and worker.handled == 1


def test_worker_stopped_during_a_slow_answer_still_finishes_that_ticket(fake):
    # (Cancelling a pending call is exercised against a real server: the fake
    # channel's future cannot be cancelled while result() waits on it.)
    channel, client, pool = fake
    worker = Worker(client, "w1", wait_seconds=30)
    done = pool.submit(worker.run)
    _, _, rpc = channel.take_unary_unary(method("ConsumeNext"))
    worker.stop.set()  # asked to stop while the server is slow to answer
    rpc.terminate(claimed(), (), grpc.StatusCode.OK, "")  # ...and then it hands over a ticket
    _, request, rpc = channel.take_unary_unary(method("CompleteTicket"))
    assert request.request_id == RID
    rpc.terminate(pb.CompleteTicketResponse(result="OK"), (), grpc.StatusCode.OK, "")
    assert done.result(5) == 1  # handled it, then stopped without claiming another


def test_worker_backs_off_while_the_server_is_away(fake):
    channel, client, pool = fake
    client.retries = 0
    worker = Worker(client, "w1", wait_seconds=1, max_backoff=0.05)
    done = pool.submit(worker.run, True)
    for _ in range(3):
        _, _, rpc = channel.take_unary_unary(method("ConsumeNext"))
        rpc.terminate(pb.ConsumeNextResponse(), (), grpc.StatusCode.UNAVAILABLE, "connection refused")
    _, _, rpc = channel.take_unary_unary(method("ConsumeNext"))
    rpc.terminate(pb.ConsumeNextResponse(result="EMPTY"), (), grpc.StatusCode.OK, "")
    assert done.result(5) == 0  # --once: one answered wait, nothing claimed
