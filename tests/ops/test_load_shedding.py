"""Long-polls cannot take the server out; health is never refused (issue 12: B4).

A real server on port 0 holding 300 real ConsumeNext long-polls over real
gRPC channels, with reads, health and /healthz checked while they wait.
"""
import re
import time

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from opsledger.client.ledger_client import OpsledgerClient
from opsledger.v1 import tickets_pb2 as pb
from opsledger.v1 import tickets_pb2_grpc
from tests.helpers import ServerThread, grpc_health

LONG_POLLS = 300  # above the 256 that used to fill the whole server


def waiting(base: str, budget: str) -> int:
    text = httpx.get(base + "/metrics").text
    m = re.search(rf'opsledger_calls_in_progress{{budget="{budget}"}} (\S+)', text)
    return int(float(m.group(1))) if m else 0


def test_held_long_polls_leave_reads_writes_and_health_alone(root):
    srv = ServerThread(root, http_addr="127.0.0.1:0", max_concurrent_rpcs=64, max_long_polls=LONG_POLLS).start()
    base = f"http://127.0.0.1:{srv.app.http_port}"
    channels = [grpc.insecure_channel(srv.target) for _ in range(6)]
    futures = []
    try:
        for i in range(LONG_POLLS):
            stub = tickets_pb2_grpc.TicketServiceStub(channels[i % len(channels)])
            futures.append(stub.ConsumeNext.future(
                pb.ConsumeNextRequest(processor_id=f"w{i}", wait_seconds=60), timeout=90))
        deadline = time.monotonic() + 60
        while waiting(base, "long-polls") < LONG_POLLS:
            assert time.monotonic() < deadline, f"only {waiting(base, 'long-polls')} long-polls arrived"
            time.sleep(0.1)

        # Every long-poll budget slot is taken and more than max_concurrent_rpcs calls are open:
        health = health_pb2_grpc.HealthStub(channels[0])
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING
        assert httpx.get(base + "/healthz", timeout=5).json()["status"] == "SERVING"
        with OpsledgerClient(srv.target, retries=0, timeout=10) as c:
            assert c.board().status == "ready"
            assert httpx.get(base + "/api/tickets/latest", timeout=10).status_code == 200
            with pytest.raises(grpc.RpcError) as info:
                c.consume_next("one-too-many", wait_seconds=5)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "long-polls" in info.value.details()
            assert c.consume_next("no-wait", wait_seconds=0).claimed is False  # a non-waiting call is a plain call
            rid = c.submit("ACKNOWLEDGE", {"message_id": "for-a-waiter"}).request_id
        claimed = []
        deadline = time.monotonic() + 30
        while not claimed:
            claimed = [f.result() for f in futures if f.done()]
            assert time.monotonic() < deadline, "no waiting long-poll claimed the new ticket"
            time.sleep(0.05)
        assert [r.request_id for r in claimed] == [rid]
    finally:
        for f in futures:
            f.cancel()
        for ch in channels:
            ch.close()
        srv.stop()


def test_health_answers_when_the_call_budget_is_exhausted(root):
    """Health is outside every budget: with room for one call in flight it still answers at once."""
    srv = ServerThread(root, http_addr="127.0.0.1:0", max_concurrent_rpcs=1, max_long_polls=1).start()
    base = f"http://127.0.0.1:{srv.app.http_port}"
    try:
        with OpsledgerClient(srv.target, retries=0, timeout=30) as c:
            held = c.consume_next_future("holder", wait_seconds=30)
            deadline = time.monotonic() + 30
            while waiting(base, "long-polls") < 1:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            channel = grpc.insecure_channel(srv.target)
            health = health_pb2_grpc.HealthStub(channel)
            for _ in range(20):
                assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == \
                    health_pb2.HealthCheckResponse.SERVING
            assert httpx.get(base + "/healthz", timeout=5).status_code == 200
            channel.close()
            held.cancel()
    finally:
        srv.stop()


def test_watch_streams_count_against_the_long_poll_budget_and_free_it_when_they_end(root):
    """A WatchTickets stream mostly waits, like a long-poll: past the budget the next one is
    RESOURCE_EXHAUSTED naming it, reads and health go on, and an ended stream frees its place."""
    srv = ServerThread(root, http_addr="127.0.0.1:0", max_concurrent_rpcs=64, max_long_polls=2).start()
    base = f"http://127.0.0.1:{srv.app.http_port}"
    channel = grpc.insecure_channel(srv.target)
    stub = tickets_pb2_grpc.TicketServiceStub(channel)
    try:
        streams = [stub.WatchTickets(pb.WatchTicketsRequest(), timeout=60) for _ in range(2)]
        for call in streams:
            assert next(call).kind == pb.TicketEvent.Kind.PROGRESS  # open and counted
        assert waiting(base, "long-polls") == 2
        with pytest.raises(grpc.RpcError) as info:
            next(stub.WatchTickets(pb.WatchTicketsRequest(), timeout=10))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "long-polls" in info.value.details()
        with OpsledgerClient(srv.target, retries=0, timeout=10) as c:
            assert c.submit("ACKNOWLEDGE", {"message_id": "beside-the-watchers"}).request_id
        assert grpc_health(srv.target) == health_pb2.HealthCheckResponse.SERVING
        streams[0].cancel()
        deadline = time.monotonic() + 30  # a hang guard; the freed place is what is checked
        while waiting(base, "long-polls") > 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        again = stub.WatchTickets(pb.WatchTicketsRequest(), timeout=60)
        assert next(again).kind == pb.TicketEvent.Kind.PROGRESS
        again.cancel()
        streams[1].cancel()
    finally:
        channel.close()
        srv.stop()
