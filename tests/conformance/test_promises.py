"""What every ledger backend promises, through the LedgerBackend interface only."""
from __future__ import annotations

import asyncio
import itertools
import threading
from collections import Counter

import orjson
import pytest

from opsledger.server.common.clock import epoch_seconds
from opsledger.server.errors import IllegalTransition, InvalidArgument, NotFound
from opsledger.server.ledger.backend import ClaimNext, LedgerBackend, Submit, SubmitOutcome, Transition
from opsledger.server.ledger.machine import DONE, FAILED, IN_PROGRESS, OPEN, STATUSES, TRANSITIONS, Event
from opsledger.server.ledger.validation import REQUEST_TYPES

UNKNOWN = "00000000-0000-4000-8000-000000000000"
STEPS = {  # how to bring a fresh ticket to each status
    OPEN: [],
    IN_PROGRESS: [Event.CONSUME],
    DONE: [Event.CONSUME, Event.COMPLETE_DONE],
    FAILED: [Event.CONSUME, Event.COMPLETE_FAILED],
}


def submit(ledger, kind="ACKNOWLEDGE", key=None, payload=None, trace_id=None) -> str:
    out = ledger.call(Submit(kind, payload or {"message_id": "m"}, trace_id, key))
    return out.request["request_id"]


def step(ledger, rid, event, who="w1", message="m", artifacts=(), token=None) -> dict:
    return ledger.call(Transition(rid, event, who, message, list(artifacts), token))


def decoded(ledger) -> tuple[list[dict], list[dict]]:
    requests, results = ledger.lines()
    return [orjson.loads(x) for x in requests], [orjson.loads(x) for x in results]


def test_is_a_ledger_backend(ledger):
    assert isinstance(ledger, LedgerBackend)
    health = ledger.health()
    assert health.writable and health.problem is None and health.backend
    assert ledger.anomalies() == [] and ledger.lines() == ([], [])
    assert ledger.counts() == {s: 0 for s in STATUSES}


def test_submit_stores_the_request_line_and_a_ticket(ledgers, ledger):
    out = ledger.call(Submit("REQUEST_REPORTS", {"report": "월말", "n": 1}, "trace-1", None))
    assert isinstance(out, SubmitOutcome) and out.appended
    (line,), results = ledger.lines()
    assert results == [] and orjson.loads(line) == out.request
    assert list(out.request) == ["schema", "request_id", "requested_at", "request_type", "payload", "trace_id", "status"]
    assert "월말".encode() in line  # UTF-8 as is
    assert out.request["requested_at"] == ledgers.clock.now_iso()
    view = ledger.ticket(out.request["request_id"])
    assert view.request == out.request and view.results == []
    assert view.row == {"request_id": out.request["request_id"], "requested_at": out.request["requested_at"],
                        "request_type": "REQUEST_REPORTS", "payload": {"report": "월말", "n": 1}, "trace_id": "trace-1",
                        "current_status": OPEN, "last_message": None, "last_processed_at": None}
    assert ledger.ticket(UNKNOWN) is None


@pytest.mark.parametrize("start,event", list(itertools.product(STATUSES, Event)))
def test_every_transition_of_the_table(ledger, start, event):
    rid = submit(ledger)
    history = [step(ledger, rid, e, who=f"w-{i}") for i, e in enumerate(STEPS[start])]
    before = ledger.lines()
    if (start, event) in TRANSITIONS:
        rec = step(ledger, rid, event, who="final", message="done", artifacts=["reports/x/out.json"])
        assert rec["status"] == TRANSITIONS[(start, event)] and rec["request_id"] == rid
        assert rec["processor_id"] == "final" and rec["message"] == "done" and rec["artifacts"] == ["reports/x/out.json"]
        assert list(rec) == ["schema", "result_id", "request_id", "processed_at", "status", "processor_id", "message",
                             "artifacts"]
        requests, results = ledger.lines()
        assert requests == before[0] and results[:-1] == before[1] and orjson.loads(results[-1]) == rec
        assert ledger.ticket(rid).row["current_status"] == rec["status"]
        assert ledger.ticket(rid).results == history + [rec]
        return
    with pytest.raises(IllegalTransition) as info:
        step(ledger, rid, event, who="late")
    err = info.value
    assert (err.request_id, err.current_status, err.attempted) == (rid, start, event.value)
    last = history[-1] if history else {}
    assert err.last_processor_id == last.get("processor_id", "") and err.last_result_id == last.get("result_id", "")
    assert ledger.lines() == before  # nothing written for a refusal
    assert ledger.ticket(rid).row["current_status"] == start


@pytest.mark.parametrize("event", list(Event))
def test_an_unknown_ticket_is_not_found_and_nothing_is_written(ledger, event):
    submit(ledger)
    before = ledger.lines()
    with pytest.raises(NotFound) as info:
        step(ledger, UNKNOWN, event)
    assert info.value.resource_name == UNKNOWN
    assert ledger.lines() == before


def test_idempotent_submit(ledgers, ledger):
    first = ledger.call(Submit("ACKNOWLEDGE", {"message_id": "m"}, "t", "key-1"))
    assert first.appended and first.request["idempotency_key"] == "key-1"
    before = ledger.lines()
    again = ledger.call(Submit("ACKNOWLEDGE", {"message_id": "m"}, "t", "key-1"))
    assert again == SubmitOutcome(first.request, appended=False)
    for other in (Submit("ACKNOWLEDGE", {"message_id": "other"}, "t", "key-1"),
                  Submit("REQUEST_REPORTS", {"message_id": "m"}, "t", "key-1"),
                  Submit("ACKNOWLEDGE", {"message_id": "m"}, None, "key-1")):
        with pytest.raises(InvalidArgument) as info:
            ledger.call(other)
        assert [(v.field, v.description) for v in info.value.violations] == [
            ("idempotency_key", "was already used for a different request")]
    assert ledger.lines() == before
    ledger = ledgers.reopen()  # the key outlives a restart
    assert ledger.call(Submit("ACKNOWLEDGE", {"message_id": "m"}, "t", "key-1")) == SubmitOutcome(first.request, False)
    assert ledger.lines() == before
    no_key = ledger.call(Submit("ACKNOWLEDGE", {"message_id": "m"}, None, None))
    assert "idempotency_key" not in no_key.request


def test_claim_next_takes_the_oldest_open_ticket_of_the_types_asked(ledgers, ledger):
    kinds = ["REQUEST_REPORTS", "ACKNOWLEDGE", "REQUEST_RECONCILE", "ACKNOWLEDGE", "REQUEST_REPORTS"]
    rids = []
    for kind in kinds:
        rids.append(submit(ledger, kind))
        ledgers.clock.advance(1)
    step(ledger, rids[0], Event.CONSUME)  # no longer OPEN
    got = ledger.call(ClaimNext(("ACKNOWLEDGE",), "w", "claimed"))
    assert got["request_id"] == rids[1] and got["status"] == IN_PROGRESS and got["processor_id"] == "w"
    assert got.request == ledger.ticket(rids[1]).request
    assert ledger.call(ClaimNext(("ACKNOWLEDGE", "REQUEST_REPORTS"), "w", "m"))["request_id"] == rids[3]
    assert ledger.call(ClaimNext((), "w", "m"))["request_id"] == rids[2]
    assert ledger.call(ClaimNext(("REQUEST_LIVE_CYCLE",), "w", "m")) is None
    before = ledger.lines()
    assert ledger.call(ClaimNext(("ACKNOWLEDGE",), "w", "m")) is None
    assert ledger.lines() == before  # an empty claim writes nothing
    assert ledger.call(ClaimNext((), "w", "m"))["request_id"] == rids[4]
    assert ledger.call(ClaimNext((), "w", "m")) is None
    assert ledger.counts() == {OPEN: 0, IN_PROGRESS: 5, DONE: 0, FAILED: 0}


def test_a_claim_answers_with_the_request_of_a_ticket_submitted_beside_it(ledger):
    """Submits and claims queued together (most land in one batch): each claim's
    answer carries the request of the ticket it took, whichever batch stored it."""
    futs = []
    for i in range(20):
        futs.append(ledger.execute(Submit("ACKNOWLEDGE", {"message_id": f"m{i}"}, None, None)))
        futs.append(ledger.execute(ClaimNext((), f"w{i}", "m")))
    # A claim may find nothing: the submit before it can be in a batch still committing.
    claims = [c for c in (f.result(30) for f in futs[1::2]) if c is not None]
    assert claims
    for c in claims:
        assert c.request == ledger.ticket(c["request_id"]).request


def _expected_order(ledger, statuses=(), types=()) -> list[str]:
    requests, results = decoded(ledger)
    status = {r["request_id"]: OPEN for r in requests}
    for r in results:
        status[r["request_id"]] = r["status"]
    keyed = [((epoch_seconds(r["requested_at"]), seq), r["request_id"]) for seq, r in enumerate(requests)
             if (not statuses or status[r["request_id"]] in statuses) and (not types or r["request_type"] in types)]
    return [rid for _key, rid in sorted(keyed, reverse=True)]


def _page_through(ledger, statuses, types, size) -> tuple[list[str], set[int]]:
    seen, totals, cursor = [], set(), None
    while True:
        rows, cursor, total = ledger.page(statuses, types, size, cursor)
        totals.add(total)
        assert len(rows) <= size
        for row in rows:
            assert (not statuses or row["current_status"] in statuses) and (not types or row["request_type"] in types)
        seen.extend(row["request_id"] for row in rows)
        if cursor is None:
            return seen, totals
        assert len(rows) == size


FILTERS = [((), ())] + [((s,), ()) for s in STATUSES] + [((), (t,)) for t in REQUEST_TYPES] + [
    ((OPEN, DONE), ()), ((), ("ACKNOWLEDGE", "REQUEST_REPORTS")), ((IN_PROGRESS,), ("REQUEST_RECONCILE",)),
    ((DONE, FAILED), ("ACKNOWLEDGE", "REQUEST_LIVE_CYCLE")), (tuple(STATUSES), tuple(REQUEST_TYPES)),
]


def test_board_pages_lose_nothing_and_repeat_nothing_over_2500_tickets(ledgers, ledger):
    futures = []
    for i in range(2500):
        if i % 7 == 0:
            ledgers.clock.advance(1)  # several tickets share each second: order falls back to submission
        futures.append(ledger.execute(Submit(REQUEST_TYPES[i % 4], {"i": i}, None, None)))
    rids = [f.result().request["request_id"] for f in futures]
    moves = [ledger.execute(Transition(rid, Event.CONSUME, "w", "m")) for rid in rids[::2]]
    [f.result() for f in moves]
    ends = [ledger.execute(Transition(rid, Event.COMPLETE_DONE if i % 2 else Event.COMPLETE_FAILED, "w", "m"))
            for i, rid in enumerate(rids[::6])]
    [f.result() for f in ends]
    counts = ledger.counts()
    assert sum(counts.values()) == 2500 and all(counts[s] > 0 for s in STATUSES)
    for statuses, types in FILTERS:
        expected = _expected_order(ledger, statuses, types)
        seen, totals = _page_through(ledger, statuses, types, 97)
        assert seen == expected, (statuses, types)
        assert totals == {len(expected)}
        if not types:
            assert len(expected) == sum(counts[s] for s in (statuses or STATUSES))


def test_a_cursor_stays_valid_while_tickets_are_added(ledgers, ledger):
    old = [submit(ledger) for _ in range(30)]
    rows, cursor, total = ledger.page((), (), 10, None)
    assert total == 30 and [r["request_id"] for r in rows] == old[::-1][:10]
    ledgers.clock.advance(5)
    newer = [submit(ledger) for _ in range(5)]
    rest = []
    while cursor is not None:
        rows, cursor, total = ledger.page((), (), 10, cursor)
        rest.extend(r["request_id"] for r in rows)
    assert rest == old[::-1][10:] and total == 35
    assert [r["request_id"] for r in ledger.page((), (), 5, None)[0]] == newer[::-1]


def test_counts_finished_since_and_stale_listing(ledgers, ledger):
    clock = ledgers.clock
    start = int(clock.now().timestamp())
    rids = [submit(ledger, REQUEST_TYPES[i % 4]) for i in range(10)]
    for rid in rids[:6]:  # consumed a minute apart: 6 IN_PROGRESS of different ages
        step(ledger, rid, Event.CONSUME)
        clock.advance(60)
    step(ledger, rids[0], Event.COMPLETE_DONE)  # at start + 360
    step(ledger, rids[1], Event.COMPLETE_FAILED)
    clock.advance(60)
    step(ledger, rids[2], Event.COMPLETE_DONE)  # at start + 420
    assert ledger.counts() == {OPEN: 4, IN_PROGRESS: 3, DONE: 2, FAILED: 1}
    assert ledger.finished_since(start) == {DONE: 2, FAILED: 1}
    assert ledger.finished_since(start + 361) == {DONE: 1, FAILED: 0}
    assert ledger.finished_since(start + 421) == {DONE: 0, FAILED: 0}
    # IN_PROGRESS: rids[3] at +180, rids[4] at +240, rids[5] at +300
    listed, total = ledger.stale_in_progress(start + 241, 10)
    assert total == 2 and [(s.request_id, s.request_type) for s in listed] == [(rids[3], REQUEST_TYPES[3]),
                                                                              (rids[4], REQUEST_TYPES[0])]
    assert [epoch_seconds(s.last_processed_at) - start for s in listed] == [180, 240]
    listed, total = ledger.stale_in_progress(start + 10_000, 1)
    assert total == 3 and [s.request_id for s in listed] == [rids[3]]
    assert ledger.stale_in_progress(start + 10_000, 0) == ([], 3)
    assert ledger.stale_in_progress(start + 180, 5) == ([], 0)  # strictly older than `before`


def test_everything_acknowledged_survives_a_restart(ledgers, ledger):
    rids = [submit(ledger, key=f"k{i}") for i in range(5)]
    step(ledger, rids[0], Event.CONSUME)
    step(ledger, rids[0], Event.COMPLETE_DONE)
    ledger.call(ClaimNext((), "w", "m"))
    before = (ledger.lines(), ledger.counts(), [ledger.ticket(r) for r in rids], ledger.page((), (), 100, None))
    ledger = ledgers.reopen()
    assert (ledger.lines(), ledger.counts(), [ledger.ticket(r) for r in rids], ledger.page((), (), 100, None)) == before
    assert ledger.anomalies() == []


def test_eight_racing_callers_one_winner_per_ticket(ledger):
    rids = [submit(ledger) for _ in range(60)]
    wins: Counter = Counter()
    refusals: Counter = Counter()
    barrier = threading.Barrier(8)

    def racer(n):
        barrier.wait()
        for rid in rids:
            for event in (Event.CONSUME, Event.COMPLETE_DONE if n % 2 else Event.COMPLETE_FAILED):
                try:
                    step(ledger, rid, event, who=f"racer-{n}")
                    wins[(rid, event.name[:8])] += 1
                except IllegalTransition:
                    refusals[n] += 1

    threads = [threading.Thread(target=racer, args=(n,)) for n in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert {k: v for k, v in wins.items() if v != 1} == {}
    assert len(wins) == 120  # one consume and one completion per ticket
    _requests, results = decoded(ledger)
    per_ticket = Counter(r["request_id"] for r in results)
    assert set(per_ticket.values()) == {2} and len(per_ticket) == 60
    assert ledger.counts()[IN_PROGRESS] == 0 and ledger.counts()[OPEN] == 0


def test_eight_racing_claimers_never_share_a_ticket(ledger):
    rids = {submit(ledger, REQUEST_TYPES[i % 4]) for i in range(80)}
    claimed: list[str] = []
    barrier = threading.Barrier(8)

    def claimer(n):
        barrier.wait()
        while (rec := ledger.call(ClaimNext((), f"c{n}", "m"))) is not None:
            claimed.append(rec["request_id"])

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(claimed) == sorted(rids)
    assert ledger.counts() == {OPEN: 0, IN_PROGRESS: 80, DONE: 0, FAILED: 0}


def test_a_retry_token_answers_the_first_attempt_even_after_a_restart(ledgers, ledger):
    rid = submit(ledger)
    first = step(ledger, rid, Event.CONSUME, token="tok-consume")
    claimable = submit(ledger)
    claim = ledger.call(ClaimNext((), "w9", "m", token="tok-claim"))
    assert claim["request_id"] == claimable
    assert claim.request == ledger.ticket(claimable).request  # the answer carries the ticket's request
    done = step(ledger, rid, Event.COMPLETE_DONE, message="ok", token="tok-done")
    before = ledger.lines()

    def retries_answer_the_first_attempts(led):
        assert step(led, rid, Event.CONSUME, token="tok-consume") == first
        assert step(led, rid, Event.COMPLETE_DONE, message="ok", token="tok-done") == done
        submit(led)  # another OPEN ticket exists: the retried claim still answers its own
        again = led.call(ClaimNext((), "w9", "m", token="tok-claim"))
        assert again == claim and again.request == claim.request  # re-read for a claim of an earlier batch
        with pytest.raises(IllegalTransition):
            step(led, rid, Event.CONSUME, token="another")
        with pytest.raises(InvalidArgument):  # same token, a different call
            step(led, rid, Event.COMPLETE_DONE, message="changed", token="tok-done")

    retries_answer_the_first_attempts(ledger)
    ledger = ledgers.reopen()
    retries_answer_the_first_attempts(ledger)
    requests, results = ledger.lines()
    assert results == before[1] and len(requests) == len(before[0]) + 2  # only the two extra submits
    # Tokens outlive the ticket's next steps too: a claim token still answers its claim
    # once the ticket is finished (so a reused token never repeats a result id).
    step(ledger, claim["request_id"], Event.COMPLETE_DONE, who="w9")
    assert ledger.call(ClaimNext((), "w9", "m", token="tok-claim")) == claim
    ids = [r["result_id"] for r in decoded(ledger)[1]]
    assert len(ids) == len(set(ids))


def test_wait_for_open_wakes_on_a_submit_and_times_out_otherwise(ledger):
    async def scenario():
        seen = ledger.open_version()
        await asyncio.wait_for(ledger.wait_for_open((), 0.2, seen), 10)  # nothing arrives: the timeout ends it
        waiter = asyncio.ensure_future(ledger.wait_for_open((), 60, seen))
        await asyncio.sleep(0.05)
        await asyncio.to_thread(submit, ledger)
        await asyncio.wait_for(waiter, 10)  # woken by the submit, long before its own 60 s
        assert ledger.open_version() != seen
        await asyncio.wait_for(ledger.wait_for_open((), 60, seen), 10)  # already changed: at once
        cancelled = asyncio.ensure_future(ledger.wait_for_open((), 60, ledger.open_version()))
        await asyncio.sleep(0.05)
        cancelled.cancel()
        await asyncio.gather(cancelled, return_exceptions=True)
        return cancelled.cancelled()

    assert asyncio.run(scenario())
