"""C9: a log renamed, deleted or replaced under a running server turns it read-only (JSONL files)."""
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from opsledger.v1 import tickets_pb2 as pb
from server.ledger.jsonl.store import REQUESTS, RESULTS, LogReplaced


def _health(server):
    with grpc.insecure_channel(server.target) as ch:
        return health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5).status


@pytest.mark.parametrize("how", ["rotated", "deleted", "lock-deleted"])
def test_a_log_renamed_or_deleted_under_the_server_turns_it_read_only(server, client, root, caplog, how):
    """logrotate-style rename (a new empty file in its place) or rm: no write is acknowledged into a
    file nobody reads after a restart; health says NOT_SERVING; reads still answer."""
    import time

    rid = client.submit("ACKNOWLEDGE", {"message_id": "m"}).request_id
    results = root / RESULTS
    if how == "rotated":
        results.rename(results.with_name(results.name + ".1"))
        results.write_bytes(b"")
    elif how == "deleted":
        results.unlink()
    else:
        (root / "state/tickets/.ledger.lock").unlink()
    with pytest.raises(grpc.RpcError) as info:
        client.consume(rid)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    named = ".ledger.lock" if how == "lock-deleted" else "ticket_results.jsonl"
    assert named in info.value.details()
    assert ("replaced" if how == "rotated" else "renamed or deleted") in info.value.details()
    assert any(named in r.getMessage() and "read-only" in r.getMessage() for r in caplog.records)
    for _ in range(50):
        if _health(server) == health_pb2.HealthCheckResponse.NOT_SERVING:
            break
        time.sleep(0.05)
    assert _health(server) == health_pb2.HealthCheckResponse.NOT_SERVING
    ticket = client.ticket(rid)  # a read on a read-only store answers
    assert ticket.row.request_id == rid and ticket.row.current_status == pb.TicketStatus.OPEN
    assert client.board().total_count == 1
    with pytest.raises(grpc.RpcError) as again:
        client.submit("ACKNOWLEDGE", {"message_id": "n"})
    assert again.value.code() == grpc.StatusCode.UNAVAILABLE
    if how == "rotated":
        assert results.read_bytes() == b""  # nothing was written into the new file either


def test_a_read_that_first_meets_a_replaced_log_still_answers(server, client, root):
    rid = client.submit("ACKNOWLEDGE", {"message_id": "m"}).request_id
    requests = root / REQUESTS
    requests.rename(requests.with_name(requests.name + ".1"))
    requests.write_bytes(b"")  # a size change: the next read catches up first, and finds the swap
    assert client.ticket(rid).row.request_id == rid  # answers (not UNAVAILABLE or INTERNAL) ...
    assert isinstance(server.app.store.failed, LogReplaced)  # ... and the swap was noticed by that read
    assert client.board().total_count == 1
