"""The durable store on real files: replay, torn tails, corruption, faults."""
import errno
import os
import subprocess

import orjson
import pytest

from opsledger.server.errors import IllegalTransition, InvalidArgument, NotFound, Unavailable
from opsledger.server.ledger.backend import Submit, Transition
from opsledger.server.ledger.jsonl.fsck import fsck
from opsledger.server.ledger.jsonl.store import REQUESTS, RESULTS, CorruptLog, JsonlLedger
from opsledger.server.ledger.machine import Event
from tests.helpers import REPO, opsledger_cmd

RECONCILE = {"mode": "FULL", "reason": "r"}


def submit(store, **kw):
    payload = kw.pop("payload", RECONCILE)
    return store.call(Submit("REQUEST_RECONCILE", payload, kw.get("trace_id"), kw.get("key"))).request["request_id"]


def consume(store, rid, who="w1"):
    return store.call(Transition(rid, Event.CONSUME, who, "start"))


def complete(store, rid, event=Event.COMPLETE_DONE, who="w1"):
    return store.call(Transition(rid, event, who, "end"))


@pytest.fixture
def store(root):
    s = JsonlLedger(root).open()
    yield s
    s.close()


def lines(root, rel):
    return (root / rel).read_bytes().splitlines()


def test_lines_match_the_contract_key_for_key(store, root):
    rid = submit(store, trace_id="t-1", key="k-1")
    consume(store, rid)
    complete(store, rid)
    req = orjson.loads(lines(root, REQUESTS)[0])
    assert list(req) == ["schema", "request_id", "requested_at", "request_type", "payload",
                         "trace_id", "status", "idempotency_key"]
    assert req["schema"] == "TICKET_REQUEST_V1" and req["status"] == "OPEN"
    results = [orjson.loads(x) for x in lines(root, RESULTS)]
    assert [list(r) for r in results] == [["schema", "result_id", "request_id", "processed_at", "status",
                                           "processor_id", "message", "artifacts"]] * 2
    assert [r["status"] for r in results] == ["IN_PROGRESS", "DONE"]


def test_request_without_key_has_no_idempotency_field(store, root):
    submit(store)
    assert "idempotency_key" not in orjson.loads(lines(root, REQUESTS)[0])


def test_refusals_write_nothing(store, root):
    rid = submit(store)
    before = [(root / p).read_bytes() if (root / p).exists() else b"" for p in (REQUESTS, RESULTS)]
    with pytest.raises(IllegalTransition):
        complete(store, rid)
    with pytest.raises(NotFound):
        consume(store, "6f1c1f8e-6b51-4f8e-9a59-3b7f0a4c1d2e")
    after = [(root / p).read_bytes() if (root / p).exists() else b"" for p in (REQUESTS, RESULTS)]
    assert before == after


def test_idempotency_key_replays_and_refuses_a_different_request(store, root):
    first = store.call(Submit("REQUEST_RECONCILE", RECONCILE, None, "k"))
    again = store.call(Submit("REQUEST_RECONCILE", RECONCILE, None, "k"))
    assert first.appended and not again.appended
    assert again.request["request_id"] == first.request["request_id"]
    with pytest.raises(InvalidArgument):
        store.call(Submit("REQUEST_RECONCILE", {"mode": "INCREMENTAL", "reason": "r"}, None, "k"))
    assert len(lines(root, REQUESTS)) == 1


def test_replay_reproduces_the_index(root):
    s = JsonlLedger(root).open()
    ids = [submit(s) for _ in range(30)]
    for rid in ids[:20]:
        consume(s, rid)
    for rid in ids[:10]:
        complete(s, rid, Event.COMPLETE_FAILED if ids.index(rid) % 2 else Event.COMPLETE_DONE)
    before = [(row, s.ticket(row["request_id"])) for row in s.page((), (), 100, None)[0]]
    counts = s.counts()
    s.close()
    s2 = JsonlLedger(root).open()
    after = [(row, s2.ticket(row["request_id"])) for row in s2.page((), (), 100, None)[0]]
    assert after == before and s2.counts() == counts
    assert counts == {"OPEN": 10, "IN_PROGRESS": 10, "DONE": 5, "FAILED": 5}
    s2.close()


def test_torn_last_line_is_moved_aside_and_cut(root):
    s = JsonlLedger(root).open()
    rid = submit(s)
    consume(s, rid)
    s.close()
    good = (root / RESULTS).read_bytes()
    with open(root / RESULTS, "ab") as f:
        f.write(b'{"schema":"TICKET_RESULT_V1","result_id":"abc')
    s = JsonlLedger(root).open()
    assert (root / RESULTS).read_bytes() == good
    aside = list((root / RESULTS).parent.glob("ticket_results.jsonl.torn-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == b'{"schema":"TICKET_RESULT_V1","result_id":"abc'
    assert s.ticket(rid).row["current_status"] == "IN_PROGRESS"
    complete(s, rid)  # the store keeps working after the cut
    s.close()


def test_unparsable_last_line_with_newline_is_torn_too(root):
    s = JsonlLedger(root).open()
    submit(s)
    s.close()
    with open(root / REQUESTS, "ab") as f:
        f.write(b"garbage\n")
    s = JsonlLedger(root).open()
    assert len(lines(root, REQUESTS)) == 1
    s.close()


def test_corrupt_middle_line_stops_start_up_naming_file_and_line(root):
    s = JsonlLedger(root).open()
    for _ in range(3):
        submit(s)
    s.close()
    data = lines(root, REQUESTS)
    data[1] = data[1].replace(b'"OPEN"', b'"OP3N"')
    (root / REQUESTS).write_bytes(b"\n".join(data) + b"\n")
    with pytest.raises(CorruptLog) as info:
        JsonlLedger(root).open()
    assert info.value.line_no == 2 and info.value.path.name == "ticket_requests.jsonl"
    assert "status" in info.value.reason


def test_fsck_reports_unknown_ticket_and_illegal_line_and_exits_1(root):
    s = JsonlLedger(root).open()
    rid = submit(s)
    consume(s, rid)
    s.close()
    res = lines(root, RESULTS)
    rec = orjson.loads(res[0])
    illegal = dict(rec, result_id="11111111-1111-4111-8111-111111111111")  # IN_PROGRESS twice
    unknown = dict(rec, result_id="22222222-2222-4222-8222-222222222222",
                   request_id="33333333-3333-4333-8333-333333333333")
    with open(root / RESULTS, "ab") as f:
        f.write(orjson.dumps(illegal) + b"\n" + orjson.dumps(unknown) + b"\n")
    before = (root / RESULTS).read_bytes()
    found = fsck(root)
    reasons = [(f.file, f.line, f.reason) for f in found if f.severity == "error"]
    assert (RESULTS, 2, f"illegal transition for {rid}: consume is not allowed from IN_PROGRESS") in reasons
    assert any(line == 3 and "unknown ticket" in r for _, line, r in reasons)
    proc = subprocess.run(opsledger_cmd("fsck", "--root", str(root)), cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 1 and "ticket_results.jsonl:3" in proc.stdout
    assert (root / RESULTS).read_bytes() == before  # fsck changes nothing
    # start-up skips the invalid lines (last valid transition wins) and says so
    s = JsonlLedger(root).open()
    assert s.ticket(rid).row["current_status"] == "IN_PROGRESS" and len(s.anomalies()) == 2
    s.close()


def test_fsck_clean_log_exits_0(root):
    s = JsonlLedger(root).open()
    rid = submit(s)
    consume(s, rid)
    s.close()
    proc = subprocess.run(opsledger_cmd("fsck", "--root", str(root)), cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("where,err", [("write", errno.EIO), ("sync", errno.ENOSPC)])
def test_failed_write_or_fsync_turns_the_store_read_only(root, where, err):
    failures = []
    s = JsonlLedger(root, on_failure=failures.append).open()
    rid = submit(s)
    size = os.path.getsize(root / REQUESTS)

    def broken(*_a):
        raise OSError(err, os.strerror(err))

    original = getattr(s, where)
    setattr(s, where, broken)
    with pytest.raises(Unavailable):
        submit(s)
    assert len(failures) == 1
    setattr(s, where, original)
    with pytest.raises(Unavailable):
        consume(s, rid)  # read-only until restart, even once the disk is fine
    assert os.path.getsize(root / REQUESTS) == size  # nothing half-written stays
    s.close()
    s = JsonlLedger(root).open()
    assert consume(s, rid)["status"] == "IN_PROGRESS"
    s.close()


def test_rows_read_back_whole_whatever_their_length(store):
    """Lines are read back by offset in growing steps: long ones come back whole, short ones alone."""
    ids = []
    for n in (1, 700, 2000):  # a 2,000-character Korean message is ~6 KB on disk
        rid = submit(store)
        consume(store, rid)
        store.call(Transition(rid, Event.COMPLETE_DONE, "w1", "점" * n))
        ids.append((rid, "점" * n))
    rows = store.page((), (), 10, None)[0]
    assert [(r["request_id"], r["last_message"]) for r in rows] == ids[::-1]
    view = store.ticket(ids[-1][0])
    assert view.results[-1]["message"] == ids[-1][1] and view.request["payload"] == RECONCILE


def test_this_process_write_in_flight_is_not_a_change_elsewhere(store, root):
    """Between an append and its fdatasync the logs are longer than what the store has
    taken in; that is its own batch, not another writer (reads would queue a Sync for it)."""
    seen = []

    def observing_sync(fd):
        seen.append(store.changed_elsewhere())
        os.fdatasync(fd)

    store.sync = observing_sync
    rid = submit(store)
    consume(store, rid)
    assert seen == [False, False]
    other = JsonlLedger(root).open()  # a second writer on the same root: that is a change
    try:
        submit(other)
    finally:
        other.close()
    assert store.changed_elsewhere()


def test_queued_claims_take_the_oldest_open_ticket_of_their_types_each(store):
    """Hundreds of claims queued at once (group commit puts many in one batch), mixed
    with submits: each takes the oldest ticket still OPEN for its types, none twice."""
    import random

    from opsledger.server.ledger.backend import ClaimNext

    rng = random.Random(7)
    kinds = ("ACKNOWLEDGE", "REQUEST_REPORTS")
    payloads = {"ACKNOWLEDGE": {"message_id": "m"}, "REQUEST_REPORTS": {}}
    first = [store.execute(Submit(k, payloads[k], None, None)) for k in (rng.choice(kinds) for _ in range(200))]
    plan = []
    for _n in range(400):
        if rng.random() < 0.25:
            plan.append(("submit", rng.choice(kinds)))
        else:
            plan.append(("claim", rng.choice(((), ("ACKNOWLEDGE",), ("REQUEST_REPORTS",)))))
    futures = [store.execute(Submit(arg, payloads[arg], None, None) if what == "submit"
                             else ClaimNext(arg, f"w{n}", "m", None))
               for n, (what, arg) in enumerate(plan)]
    order = [(f.result().request["request_id"], f.result().request["request_type"]) for f in first]
    status = {rid: "OPEN" for rid, _ in order}
    for (what, arg), fut in zip(plan, futures):
        got = fut.result()
        if what == "submit":
            order.append((got.request["request_id"], arg))
            status[order[-1][0]] = "OPEN"
            continue
        want = next((rid for rid, kind in order if status[rid] == "OPEN" and (not arg or kind in arg)), None)
        assert (got and got["request_id"]) == want
        if want is not None:
            status[want] = "IN_PROGRESS"
    assert store.counts()["IN_PROGRESS"] == sum(1 for s in status.values() if s == "IN_PROGRESS")
