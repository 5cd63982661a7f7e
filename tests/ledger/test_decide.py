"""The pure decide step: rules that need a batch, retry tokens, and no I/O at all."""
import subprocess
import sys
import textwrap
import uuid

import pytest

from opsledger.server.errors import IllegalTransition, InvalidArgument, NotFound
from opsledger.server.ledger.backend import ClaimNext, Submit, SubmitOutcome, Transition
from opsledger.server.ledger.decide import Batch, Refusal, SnapshotView, claim_result_id, decide, transition_result_id
from opsledger.server.ledger.machine import Event
from opsledger.server.ledger.records import made_by_token
from tests.helpers import REPO

NOW = "2026-01-03T14:50:00+09:00"


def ids():
    n = iter(range(1, 10**6))
    return lambda: str(uuid.UUID(int=next(n), version=4))


def run(view, *commands, new_id=None):
    batch = Batch()
    new_id = new_id or ids()
    return [decide(c, view, batch, NOW, new_id) for c in commands], batch


def submit(key=None, kind="ACKNOWLEDGE"):
    return Submit(kind, {"message_id": "m"}, None, key)


def test_commands_later_in_a_batch_see_what_earlier_ones_decided():
    view = SnapshotView()
    (s,), batch = run(view, submit())
    rid = s.answer.request["request_id"]
    out, batch = run(view, Transition(rid, Event.CONSUME, "w", "m"))
    assert isinstance(out[0], Refusal) and isinstance(out[0].error, NotFound)  # not stored yet, not in this batch
    out, batch = run(view, submit(), ClaimNext((), "w1", "a"), ClaimNext((), "w2", "b"),
                     Transition(str(uuid.UUID(int=1, version=4)), Event.COMPLETE_DONE, "w1", "done"),
                     Transition(str(uuid.UUID(int=1, version=4)), Event.COMPLETE_DONE, "w9", "again"))
    submitted, claim1, claim2, done, again = out
    assert claim1.answer["request_id"] == submitted.answer.request["request_id"]
    assert claim2.answer is None  # one OPEN ticket, never claimed twice in one batch
    assert done.answer["status"] == "DONE"
    assert isinstance(again.error, IllegalTransition)
    assert again.error.current_status == "DONE" and again.error.last_result_id == done.answer["result_id"]
    assert [r["status"] for r in batch.results] == ["IN_PROGRESS", "DONE"] and len(batch.requests) == 1


def test_claim_takes_stored_open_tickets_oldest_first_then_this_batchs():
    view = SnapshotView()
    first, b = run(view, submit(kind="REQUEST_REPORTS"), submit(kind="ACKNOWLEDGE"))
    view.absorb(b)
    old_reports, old_ack = (d.answer.request["request_id"] for d in first)
    out, _ = run(view, submit(kind="REQUEST_REPORTS"), ClaimNext(("ACKNOWLEDGE",), "w", "m"),
                 ClaimNext(("REQUEST_REPORTS",), "w", "m"), ClaimNext(("REQUEST_REPORTS",), "w", "m"),
                 ClaimNext(("REQUEST_REPORTS",), "w", "m"), new_id=lambda: str(uuid.uuid4()))
    new, ack, rep1, rep2, none = out
    assert ack.answer["request_id"] == old_ack
    assert rep1.answer["request_id"] == old_reports and rep2.answer["request_id"] == new.answer.request["request_id"]
    assert none.answer is None


@pytest.mark.parametrize("seed", range(20))
def test_every_claim_in_a_long_batch_takes_the_oldest_ticket_open_at_that_moment(seed):
    """Claims of several type filters mixed with submits and consumes by id, all in one
    batch, against the rule itself: stored OPEN tickets oldest first, then this batch's."""
    import random

    rng = random.Random(seed)
    kinds = ("ACKNOWLEDGE", "REQUEST_REPORTS", "REQUEST_RECONCILE")
    view = SnapshotView()
    stored, b = run(view, *(submit(kind=rng.choice(kinds)) for _ in range(60)))
    view.absorb(b)
    consumed, b = run(view, *(Transition(d.answer.request["request_id"], Event.CONSUME, "w", "m")
                              for d in stored if rng.random() < 0.3))
    view.absorb(b)
    order = [(d.answer.request["request_id"], d.answer.request["request_type"]) for d in stored]
    status = {rid: view.status(rid) for rid, _ in order}
    new: list[tuple[str, str]] = []
    batch, new_id = Batch(), (lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4)))
    for n in range(400):
        roll = rng.random()
        if roll < 0.2:
            d = decide(submit(kind=rng.choice(kinds)), view, batch, NOW, new_id)
            new.append((d.answer.request["request_id"], d.answer.request["request_type"]))
            status[new[-1][0]] = "OPEN"
        elif roll < 0.3:
            rid = rng.choice(order)[0]
            d = decide(Transition(rid, Event.CONSUME, "w", "m"), view, batch, NOW, new_id)
            assert isinstance(d, Refusal) == (status[rid] != "OPEN")
            status[rid] = "IN_PROGRESS"
        else:
            types = tuple(rng.sample(kinds, rng.choice((0, 1, 1, 2))))
            want = next((rid for rid, kind in order + new
                         if status[rid] == "OPEN" and (not types or kind in types)), None)
            d = decide(ClaimNext(types, f"w{n}", "m"), view, batch, NOW, new_id)
            assert (d.answer and d.answer["request_id"]) == want, n
            if want is not None:
                status[want] = "IN_PROGRESS"
    assert sum(1 for r in batch.results if r["status"] == "IN_PROGRESS") == len(set(
        r["request_id"] for r in batch.results))  # no ticket taken twice


def test_idempotent_submit_within_and_across_batches():
    view = SnapshotView()
    out, batch = run(view, submit("k"), submit("k"), Submit("ACKNOWLEDGE", {"message_id": "other"}, None, "k"))
    assert out[0].answer.appended and out[1].answer == SubmitOutcome(out[0].answer.request, appended=False)
    assert isinstance(out[2].error, InvalidArgument) and out[2].error.violations[0].field == "idempotency_key"
    assert len(batch.requests) == 1
    view.absorb(batch)
    (again,), batch = run(view, submit("k"))
    assert again.answer.appended is False and not batch


def test_a_retried_transition_with_its_token_answers_the_first_result_and_writes_nothing():
    view = SnapshotView()
    (s,), b = run(view, submit())
    view.absorb(b)
    rid = s.answer.request["request_id"]
    (first,), b = run(view, Transition(rid, Event.CONSUME, "w", "m", token="t-1"))
    assert first.answer["result_id"] == transition_result_id("t-1", rid, "consume") and made_by_token(first.answer["result_id"])
    view.absorb(b)
    out, b = run(view, Transition(rid, Event.CONSUME, "w", "m", token="t-1"),
                 Transition(rid, Event.CONSUME, "w", "m", token="t-2"),
                 Transition(rid, Event.CONSUME, "w", "m"),
                 Transition(rid, Event.CONSUME, "other", "m", token="t-1"))
    retry, other_token, no_token, changed = out
    assert retry.answer == first.answer and not b
    assert isinstance(other_token.error, IllegalTransition) and isinstance(no_token.error, IllegalTransition)
    assert isinstance(changed.error, InvalidArgument)  # same token, different call


def test_a_retried_claim_with_its_token_answers_the_same_ticket():
    view = SnapshotView()
    _, b = run(view, submit(), submit())
    view.absorb(b)
    (first,), b = run(view, ClaimNext((), "w", "m", token="c-1"))
    assert first.answer["result_id"] == claim_result_id("c-1", "w")
    view.absorb(b)
    out, b = run(view, ClaimNext((), "w", "m", token="c-1"), ClaimNext((), "w2", "m", token="c-1"))
    assert out[0].answer == first.answer
    assert out[1].answer["request_id"] != first.answer["request_id"]  # another worker's token is its own
    # Within one batch too: the same token twice claims once.
    view2 = SnapshotView()
    _, b = run(view2, submit(), submit())
    view2.absorb(b)
    out, b = run(view2, ClaimNext((), "w", "m", token="x"), ClaimNext((), "w", "m", token="x"))
    assert out[0].answer == out[1].answer and len(b.results) == 1


def test_decide_does_no_io():
    # A fresh interpreter where files, writes and sockets fail: importing and
    # running decide must not notice.
    script = textwrap.dedent("""
        import builtins, io, os, socket
        def refuse(*a, **k):
            raise AssertionError("I/O attempted")
        builtins.open = io.open = os.open = os.write = os.pread = os.fsync = os.fdatasync = refuse
        socket.socket = socket.create_connection = refuse
        from opsledger.server.ledger.backend import ClaimNext, Submit, Transition
        from opsledger.server.ledger.decide import Batch, Decision, Refusal, SnapshotView, decide
        from opsledger.server.ledger.machine import Event
        view, batch = SnapshotView(), Batch()
        now = "2026-01-03T14:50:00+09:00"
        s = decide(Submit("ACKNOWLEDGE", {"message_id": "m"}, None, "k"), view, batch, now)
        rid = s.answer.request["request_id"]
        c = decide(ClaimNext((), "w", "m", token="t"), view, batch, now)
        d = decide(Transition(rid, Event.COMPLETE_DONE, "w", "done", ["a/b.json"], token="u"), view, batch, now)
        r = decide(Transition(rid, Event.CONSUME, "w", "m"), view, batch, now)
        assert isinstance(d, Decision) and isinstance(r, Refusal) and c.answer["request_id"] == rid
        print("ok", len(batch.requests), len(batch.results))
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["ok", "1", "2"]


def test_a_command_that_is_not_one_is_a_type_error():
    with pytest.raises(TypeError, match="not a ledger command"):
        decide(object(), SnapshotView(), Batch(), NOW)
