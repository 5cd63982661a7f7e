"""WatchTickets' life cycle through real gRPC: watchers that go away free the server's
work at once, and a stopping server ends every stream naming where to resume."""
import asyncio
import time

import grpc

from opsledger.client.ledger_client import OpsledgerClient
from opsledger.v1 import tickets_pb2 as pb
from opsledger.v1 import tickets_pb2_grpc
from tests.helpers import ServerThread

PROGRESS = pb.TicketEvent.Kind.PROGRESS


def _until(cond, timeout: float = 20.0) -> bool:
    """Poll ``cond`` (a hang guard, not a speed check: the assertion is on the state)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def _tasks(srv) -> int:
    async def count():
        return len(asyncio.all_tasks())
    return srv.run(count())


def test_watchers_that_disconnect_release_their_tasks_and_the_feed(tmp_path):
    srv = ServerThread(tmp_path / "root").start()
    try:
        with OpsledgerClient(srv.target, retries=0, timeout=10) as c:
            for i in range(5):
                c.submit("ACKNOWLEDGE", {"message_id": f"m{i}"})
        before = _tasks(srv)
        feed = srv.app.tickets.feed
        channel = grpc.insecure_channel(srv.target)
        stub = tickets_pb2_grpc.TicketServiceStub(channel)
        streams = [stub.WatchTickets(pb.WatchTicketsRequest(from_beginning=True)) for _ in range(50)]
        for s in streams:
            assert next(s).kind == PROGRESS  # every stream is open on the server
        assert feed.watchers == 50 and feed._task is not None
        with OpsledgerClient(srv.target, retries=0, timeout=10) as c:
            c.submit("ACKNOWLEDGE", {"message_id": "live"})
        for s in streams:  # each sees the five earlier submissions, then the live one
            kinds = [next(s).kind for _ in range(6)]
            assert kinds == [pb.TicketEvent.Kind.SUBMITTED] * 6
        for s in streams:
            s.cancel()
        assert _until(lambda: feed.watchers == 0), feed.watchers
        assert feed._task is None and feed._events == []  # the reader stopped, its ring is gone
        assert _until(lambda: _tasks(srv) <= before), (_tasks(srv), before)
        channel.close()
    finally:
        srv.stop()


def test_a_stopping_server_ends_every_watch_naming_where_to_resume(tmp_path):
    srv = ServerThread(tmp_path / "root").start()
    stopped = False
    try:
        with OpsledgerClient(srv.target, retries=0, timeout=10) as c:
            c.submit("ACKNOWLEDGE", {"message_id": "m0"})
        channel = grpc.insecure_channel(srv.target)
        stub = tickets_pb2_grpc.TicketServiceStub(channel)
        streams = [stub.WatchTickets(pb.WatchTicketsRequest(from_beginning=True)) for _ in range(3)]
        last = []
        for s in streams:
            assert next(s).kind == PROGRESS
            event = next(s)
            assert event.kind == pb.TicketEvent.Kind.SUBMITTED
            last.append(event.revision)
        srv.stop(grace=5.0)
        stopped = True
        for s, revision in zip(streams, last):
            extra = []  # a progress event may come first; then the stream must end
            try:
                for e in s:
                    extra.append(e)
            except grpc.RpcError as err:
                assert err.code() == grpc.StatusCode.UNAVAILABLE, err
                assert "shutting down" in err.details()
                assert all(e.kind == PROGRESS for e in extra)
                # Nothing happened after the one submission: resume exactly after it.
                assert err.details().endswith(f"resume with after={revision}"), err.details()
            else:
                raise AssertionError(f"the stream ended without a status: {extra}")
        channel.close()
    finally:
        if not stopped:
            srv.stop()
