"""Events (WatchTickets' query): the same promises on every backend, through LedgerBackend only."""
import asyncio
import threading

import orjson
import pytest

from opsledger.server.errors import InvalidArgument
from opsledger.server.ledger.backend import ClaimNext, Submit, Transition
from opsledger.server.ledger.machine import Event


def _submit(ledger, i, kind="ACKNOWLEDGE"):
    payload = {"message_id": f"m{i}"} if kind == "ACKNOWLEDGE" else {"reason": f"r{i}"}
    return ledger.call(Submit(kind, payload, None, None)).request["request_id"]


def _all(ledger, after=None, chunk=3):
    out = []
    while True:
        events, after = ledger.events_after(after, chunk)
        out += events
        if len(events) < chunk:
            return out, after


def test_events_are_the_lines_in_log_order_and_resume_from_any_revision(ledgers):
    ledger = ledgers.open()
    assert ledger.events_after(None, 10)[0] == []
    ids = [_submit(ledger, i) for i in range(4)]
    ledger.call(ClaimNext((), "w", "go"))
    ledger.call(Transition(ids[0], Event.COMPLETE_FAILED, "w", "broke"))
    rid = _submit(ledger, 9, "REQUEST_LIVE_CYCLE")
    ledger.call(Transition(rid, Event.CONSUME, "w", "go"))
    events, head = _all(ledger)
    assert head == ledger.head_revision() == events[-1].revision
    requests, results = ledger.lines()
    assert [orjson.dumps(e.record) for e in events if e.kind == "SUBMITTED"] == requests
    assert [orjson.dumps(e.record) for e in events if e.kind == "TRANSITION"] == results
    assert [(e.request_id, e.status) for e in events if e.kind == "TRANSITION"] == [
        (ids[0], "IN_PROGRESS"), (ids[0], "FAILED"), (rid, "IN_PROGRESS")]
    assert events[-1].request_type == "REQUEST_LIVE_CYCLE" and events[-3].request_type == "ACKNOWLEDGE"
    for i, e in enumerate(events):  # from every revision, exactly the rest
        assert _all(ledger, e.revision)[0] == events[i + 1:]
    # A restart keeps every revision and the order.
    ledger = ledgers.reopen()
    assert _all(ledger)[0] == events
    assert ledger.events_after(events[2].revision, 100)[0] == events[3:]


def test_a_batch_puts_requests_before_results_and_one_order_for_everyone(ledgers):
    ledger = ledgers.open()
    # Many callers at once: group-committed batches mixing submits and claims of those submits.
    def work(i):
        for j in range(20):
            _submit(ledger, i * 100 + j)
            ledger.call(ClaimNext((), f"w{i}", "go"))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events, _ = _all(ledger, chunk=37)
    seen = set()
    for e in events:
        if e.kind == "SUBMITTED":
            seen.add(e.request_id)
        else:
            assert e.request_id in seen
    assert len({e.revision for e in events}) == len(events) == 320
    assert _all(ledgers.reopen(), chunk=1000)[0] == events


def test_bad_revisions_are_refused_naming_after(ledgers, tmp_path):
    ledger = ledgers.open()
    _submit(ledger, 0)
    _submit(ledger, 1)
    good = ledger.head_revision()
    from tests.conformance.conftest import Ledgers

    other = Ledgers(ledgers.kind, tmp_path / "other")
    try:
        o = other.open()
        _submit(o, 0)
        foreign = o.head_revision()
    finally:
        other.close()
    for bad in ("", "nonsense", good + "x", good[:-1] + ("1" if good[-1] != "1" else "2"), foreign):
        with pytest.raises(InvalidArgument) as err:
            ledger.events_after(bad, 10)
        assert err.value.violations[0].field == "after"


def test_wait_for_commit_wakes_on_a_commit(ledgers):
    ledger = ledgers.open()

    async def scenario():
        since = ledger.commit_version()
        waiting = asyncio.create_task(ledger.wait_for_commit(since, 30))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await asyncio.to_thread(_submit, ledger, 0)
        await asyncio.wait_for(waiting, 10)
        assert ledger.commit_version() != since

    asyncio.run(scenario())
