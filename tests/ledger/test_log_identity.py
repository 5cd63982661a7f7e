"""C9: a log renamed, deleted or replaced under a running server turns it read-only (JSONL files)."""
import grpc
import pytest
from grpc_health.v1 import health_pb2

from opsledger.server.ledger.jsonl.store import REQUESTS, RESULTS, LogReplaced
from opsledger.v1 import tickets_pb2 as pb
from tests.helpers import grpc_health


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
        if grpc_health(server.target) == health_pb2.HealthCheckResponse.NOT_SERVING:
            break
        time.sleep(0.05)
    assert grpc_health(server.target) == health_pb2.HealthCheckResponse.NOT_SERVING
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


COMMITS_FILE = "state/tickets/.ledger.commits"


def _events(target, n):
    """The first ``n`` events of the ledger, in its order: (revision, kind, request_id)."""
    from opsledger.client.ledger_client import OpsledgerClient

    out = []
    with OpsledgerClient(target, retries=0, timeout=10) as c:
        for e in c.watch(from_beginning=True, reconnect=False):
            out.append((e.revision, e.kind, e.request_id))
            if len(out) == n:
                return out
    return out


def _interleaved(c):
    """Three batches whose lines interleave (submit, consume, submit): the order depends
    on the batch boundaries, not only on the two logs."""
    first = c.submit("ACKNOWLEDGE", {"message_id": "a"}).request_id
    c.consume(first, "w")
    return first, c.submit("ACKNOWLEDGE", {"message_id": "b"}).request_id


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_deleted_or_replaced_commits_file_keeps_the_event_order_across_a_restart(root, how):
    """The batch boundaries are derived data: the server goes on serving, puts them back
    at the path, and a restart (which reads the path) gives watchers the same order."""
    from opsledger.client.ledger_client import OpsledgerClient
    from tests.helpers import ServerThread

    server = ServerThread(root).start()
    try:
        with OpsledgerClient(server.target, retries=0, timeout=10) as client:
            _first, second = _interleaved(client)
            before = _events(server.target, 3)
            path = root / COMMITS_FILE
            if how == "deleted":
                path.unlink()
            else:
                path.rename(path.with_name(path.name + ".old"))
                path.write_bytes(b"")
            client.consume(second, "w")  # a batch after the swap: acknowledged, not refused
        assert grpc_health(server.target) == health_pb2.HealthCheckResponse.SERVING
        after = _events(server.target, 4)
        assert after[:3] == before
    finally:
        server.stop()
    again = ServerThread(root).start()
    try:
        assert _events(again.target, 4) == after  # the order a watcher saw, and its revisions, hold
    finally:
        again.stop()


def test_processes_on_one_root_keep_one_event_order_after_the_commits_file_is_deleted(root):
    """A process started after the deletion makes a new file; one started before must write
    its boundaries there too, not into the deleted one (the two orders would split)."""
    from opsledger.client.ledger_client import OpsledgerClient
    from tests.helpers import ServerProcess

    a = ServerProcess(root, http=False)
    c = None
    try:
        with OpsledgerClient(a.target, retries=0, timeout=10) as ca:
            _interleaved(ca)
            (root / COMMITS_FILE).unlink()
            c = ServerProcess(root, http=False)
            with OpsledgerClient(c.target, retries=0, timeout=10) as cc:
                _first, second = _interleaved(cc)
                ca.consume(second, "w")
                cc.submit("ACKNOWLEDGE", {"message_id": "c"})
        seen_by_a, seen_by_c = _events(a.target, 8), _events(c.target, 8)
        assert len(seen_by_a) == 8 and seen_by_a == seen_by_c
    finally:
        assert a.terminate() == 0
        if c is not None:
            assert c.terminate() == 0
