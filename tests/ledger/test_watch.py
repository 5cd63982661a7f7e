"""WatchTickets over real gRPC: order and content equal the logs, resume, processes, slow watchers, refusals."""
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import orjson
import pytest

from opsledger.client.ledger_client import OpsledgerClient
from opsledger.server.common.contract_json import contract_dict
from opsledger.server.ledger.backend import Submit, Transition
from opsledger.server.ledger.jsonl.files import REQUESTS, RESULTS
from opsledger.server.ledger.machine import Event
from opsledger.v1 import tickets_pb2 as pb
from tests.helpers import ServerProcess, ServerThread

PROGRESS = pb.TicketEvent.Kind.PROGRESS


def log_records(root):
    reqs = [orjson.loads(x) for x in (root / REQUESTS).read_bytes().splitlines()]
    ress = [orjson.loads(x) for x in (root / RESULTS).read_bytes().splitlines()]
    return reqs, ress


def record_of(event) -> dict:
    """The event's record as a plain dict (an absent idempotency key stays absent, as in the log)."""
    kind = event.WhichOneof("record")
    rec = contract_dict(getattr(event, kind))
    if kind == "request" and rec.get("idempotency_key") is None:
        rec.pop("idempotency_key", None)
    return rec


def check_equals_logs(events, root):
    """Request events are the requests log in order, result events the results log,
    every result after its ticket's request, each revision once."""
    reqs, ress = log_records(root)
    assert [record_of(e) for e in events if e.kind == pb.TicketEvent.Kind.SUBMITTED] == reqs
    assert [record_of(e) for e in events if e.kind == pb.TicketEvent.Kind.TRANSITION] == ress
    seen = set()
    types = {r["request_id"]: r["request_type"] for r in reqs}
    for e in events:
        if e.kind == pb.TicketEvent.Kind.SUBMITTED:
            seen.add(e.request_id)
            assert pb.TicketStatus.Value.Name(e.status) == "OPEN"
        else:
            assert e.request_id in seen, "a result before its request"
            assert e.status == e.result.status and e.status
        assert pb.RequestType.Value.Name(e.request_type) == types[e.request_id]
    assert len({e.revision for e in events}) == len(events)


def collect(client, n, **kw):
    """The first ``n`` non-progress events of a watch."""
    out = []
    for event in client.watch(**kw):
        out.append(event)
        if len(out) >= n:
            break
    return out


def workload(target, calls, clients=8):
    """A mixed workload: submits, claims, completions (DONE and FAILED), refusals."""
    per = calls // clients

    def one(i):
        rng = random.Random(i)
        with OpsledgerClient(target, retries=0, timeout=30) as c:
            mine = []
            done = 0
            while done < per:
                roll = rng.random()
                if roll < 0.4 or not mine:
                    if rng.random() < 0.5:
                        sent = c.submit("ACKNOWLEDGE", {"message_id": f"m{i}-{done}"})
                    else:
                        sent = c.submit("REQUEST_LIVE_CYCLE", {"reason": f"r{i}-{done}"})
                    mine.append(sent.request_id)
                elif roll < 0.7:
                    c.consume_next(f"w{i}")
                else:
                    rid = mine.pop(rng.randrange(len(mine)))
                    try:
                        c.consume(rid, f"w{i}")
                    except grpc.RpcError:
                        pass  # claimed by someone else: a refusal writes nothing
                    try:
                        c.complete(rid, rng.choice(["DONE", "FAILED"]), f"w{i}", "finished")
                    except grpc.RpcError:
                        pass
                    done += 1
                done += 1

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(clients)))


def test_events_equal_the_logs_for_a_mixed_workload(root):
    srv = ServerThread(root, fsync="never").start()
    try:
        with OpsledgerClient(srv.target, retries=0) as c:
            live: list = []
            ready = threading.Event()

            def follow():
                for event in c.watch(from_beginning=True, progress=True):
                    if event.kind == PROGRESS:
                        ready.set()
                        if done.is_set() and event.revision == final:
                            return
                        continue
                    live.append(event)
                    if done.is_set() and event.revision == final:
                        return

            done = threading.Event()
            final = None
            t = threading.Thread(target=follow, daemon=True)
            t.start()
            assert ready.wait(10)
            workload(srv.target, 5000)
            final = srv.app.store.head_revision()
            done.set()
            t.join(60)
            assert not t.is_alive()
            check_equals_logs(live, root)
            # A watcher from the beginning afterwards sees the very same sequence, revisions included.
            again = collect(c, len(live), from_beginning=True)
            assert [(e.revision, record_of(e)) for e in again] == [(e.revision, record_of(e)) for e in live]
    finally:
        srv.stop()


def test_resume_at_random_points_and_after_sigkill(root):
    srv = ServerProcess(root, "--fsync", "never", http=False)
    got: list = []
    try:
        with OpsledgerClient(srv.target, retries=0) as c:
            ids = [c.submit("ACKNOWLEDGE", {"message_id": f"m{i}"}).request_id for i in range(60)]
            for rid in ids[:30]:
                c.consume(rid, "w")
            rng = random.Random(7)
            after = ""
            while len(got) < 90:
                chunk = collect(c, min(rng.randint(1, 17), 90 - len(got)), after=after, from_beginning=not after)
                got += chunk
                after = chunk[-1].revision
        srv.kill()
        srv = ServerProcess(root, "--fsync", "never", http=False)
        with OpsledgerClient(srv.target, retries=0) as c:
            for rid in ids[30:40]:
                c.consume(rid, "w")
            got += collect(c, 10, after=after)
            check_equals_logs(got, root)
    finally:
        srv.kill()


def test_reconnecting_client_survives_a_restart(root):
    """The client's iterator rides over a SIGKILL + restart on the same port, missing nothing."""
    srv = ServerProcess(root, "--fsync", "never", http=False)
    port = srv.info["grpc_port"]
    got: list = []
    try:
        with OpsledgerClient(srv.target, retries=0, backoff=0.05) as c:
            c.submit("ACKNOWLEDGE", {"message_id": "first"})
            it = c.watch(from_beginning=True)
            got.append(next(it))
            srv.kill()
            srv = ServerProcess(root, "--fsync", "never", http=False, grpc_addr=f"127.0.0.1:{port}")
            with OpsledgerClient(srv.target, retries=0) as other:
                other.submit("ACKNOWLEDGE", {"message_id": "second"})
            got.append(next(it))
            it.close()
        check_equals_logs(got, root)
    finally:
        srv.kill()


def test_a_watcher_on_one_process_sees_the_other_processes_appends(root):
    a = ServerProcess(root, "--fsync", "never", http=False)
    b = ServerProcess(root, "--fsync", "never", http=False)
    try:
        with OpsledgerClient(a.target, retries=0) as ca, OpsledgerClient(b.target, retries=0) as cb:
            ca.submit("ACKNOWLEDGE", {"message_id": "a0"})
            box: list = []
            t = threading.Thread(target=lambda: box.extend(collect(ca, 7, from_beginning=True)), daemon=True)
            t.start()
            rid = cb.submit("ACKNOWLEDGE", {"message_id": "b0"}).request_id
            cb.consume(rid, "wb")
            ca.submit("ACKNOWLEDGE", {"message_id": "a1"})
            cb.complete(rid, "DONE", "wb", "ok")
            rid2 = cb.submit("REQUEST_LIVE_CYCLE", {"reason": "r"}).request_id
            ca.consume(rid2, "wa")
            t.join(30)
            assert len(box) == 7
            check_equals_logs(box, root)
            # Both processes hand out the same order and revisions.
            assert [e.revision for e in collect(cb, 7, from_beginning=True)] == [e.revision for e in box]
    finally:
        a.kill()
        b.kill()


def _rss_kib(pid="self") -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_slow_watcher_is_served_from_the_log_and_memory_stays_bounded(root):
    srv = ServerThread(root, fsync="never").start()
    store = srv.app.store
    try:
        with OpsledgerClient(srv.target, retries=0) as c:
            call = c.tickets.WatchTickets(pb.WatchTicketsRequest(from_beginning=True))
            first = next(call)  # the stream is open; from here it reads nothing
            assert first.kind == PROGRESS
            before = _rss_kib()

            def make(i):
                for j in range(i, 16667, 8):
                    rid = store.call(Submit("ACKNOWLEDGE", {"message_id": f"m{j}"}, None, None)).request["request_id"]
                    store.call(Transition(rid, Event.CONSUME, "w", "go"))
                    store.call(Transition(rid, Event.COMPLETE_DONE, "w", "done"))

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(make, range(8)))
            time.sleep(1.0)  # let the feed and the watcher do whatever they would do
            grown_mib = (_rss_kib() - before) / 1024
            events = []
            for event in call:
                if event.kind != PROGRESS:
                    events.append(event)
                if len(events) == 50001:
                    break
            call.cancel()
            check_equals_logs(events, root)
            print(f"RSS growth while a watcher read nothing during 50,001 events: {grown_mib:.1f} MiB")
            # The logs of these events are ~13 MiB; holding them as messages would be several times that.
            assert grown_mib < 64
    finally:
        srv.stop()


def test_bad_tokens_and_filters_are_refused_before_the_stream_starts(root, server, client):
    client.submit("ACKNOWLEDGE", {"message_id": "m"})
    good = collect(client, 1, from_beginning=True)[0].revision
    other = ServerThread(root.parent / "other").start()
    try:
        with OpsledgerClient(other.target, retries=0) as oc:
            oc.submit("ACKNOWLEDGE", {"message_id": "x"})
            foreign = collect(oc, 1, from_beginning=True)[0].revision
    finally:
        other.stop()
    cases = [
        (pb.WatchTicketsRequest(after="nonsense"), "after"),
        (pb.WatchTicketsRequest(after=foreign), "after"),
        (pb.WatchTicketsRequest(after=good[:-1] + ("0" if good[-1] != "0" else "1")), "after"),
        (pb.WatchTicketsRequest(after="j1.3.0." + good.rsplit(".", 1)[1]), "after"),
        (pb.WatchTicketsRequest(status=[42]), "status"),
        (pb.WatchTicketsRequest(request_type=[0]), "request_type"),
    ]
    for req, field in cases:
        call = client.tickets.WatchTickets(req)
        with pytest.raises(grpc.RpcError) as err:
            next(call)  # no event comes first: the refusal is the first thing the stream says
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details().startswith(field + ":"), err.value.details()
    it = client.watch(after=good, progress=True)
    assert next(it).kind == PROGRESS
    it.close()


def test_filters_and_progress(root, server, client):
    rid = client.submit("ACKNOWLEDGE", {"message_id": "m"}).request_id
    client.submit("REQUEST_LIVE_CYCLE", {"reason": "r"})
    client.consume(rid, "w")
    client.complete(rid, "FAILED", "w", "broke")
    failed = collect(client, 1, from_beginning=True, statuses=["FAILED"])
    assert [e.result.message for e in failed] == ["broke"]
    cycles = collect(client, 1, from_beginning=True, types=["REQUEST_LIVE_CYCLE"])
    assert cycles[0].request.payload["reason"] == "r"
    # A filtered watcher still learns where it is: the first beat names the start, later ones its place.
    it = client.watch(from_beginning=True, statuses=["DONE"], progress=True)
    first = next(it)
    assert first.kind == PROGRESS
    it.close()
