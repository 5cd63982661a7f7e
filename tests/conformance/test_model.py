"""Hypothesis stateful test: each backend against a plain model, with restarts."""
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from opsledger.server.errors import IllegalTransition, InvalidArgument, NotFound
from opsledger.server.ledger.backend import ClaimNext, Submit, Transition
from opsledger.server.ledger.machine import STATUSES, TRANSITIONS, Event
from opsledger.server.ledger.validation import REQUEST_TYPES
from tests.conformance.conftest import BACKENDS, Ledgers

TYPES = REQUEST_TYPES[:2]


class LedgerModel(RuleBasedStateMachine):
    KIND = ""
    tickets = Bundle("tickets")

    @initialize()
    def open_store(self):
        self.dir = Path(tempfile.mkdtemp())
        self.ledgers = Ledgers(self.KIND, self.dir / "ledger")
        self.store = self.ledgers.open()
        self.status: dict[str, str] = {}  # request_id -> status
        self.kind: dict[str, str] = {}
        self.order: list[str] = []  # submission order
        self.results: dict[str, list[dict]] = {}
        self.keys: dict[str, tuple] = {}  # idempotency key -> (request_id, request)
        self.tokens: dict[tuple, dict] = {}  # (what, token) -> first answer

    def teardown(self):
        self.ledgers.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(target=tickets, kind=st.sampled_from(TYPES), key=st.one_of(st.none(), st.sampled_from(["a", "b"])),
          n=st.integers(0, 2))
    def submit(self, kind, key, n):
        payload = {"n": n}
        try:
            out = self.store.call(Submit(kind, payload, None, key))
        except InvalidArgument:
            assert key in self.keys and self.keys[key][1] != (kind, payload)
            return self.keys[key][0]
        rid = out.request["request_id"]
        if key in self.keys:
            assert not out.appended and rid == self.keys[key][0] and self.keys[key][1] == (kind, payload)
            return rid
        assert out.appended and rid not in self.status
        self.status[rid], self.kind[rid], self.results[rid] = "OPEN", kind, []
        self.order.append(rid)
        if key is not None:
            self.keys[key] = (rid, (kind, payload))
        return rid

    @rule(rid=tickets, event=st.sampled_from(list(Event)), who=st.sampled_from(["w1", "w2"]),
          token=st.one_of(st.none(), st.sampled_from(["t1", "t2"])))
    def transition(self, rid, event, who, token):
        current = self.status[rid]
        earlier = self.tokens.get((rid, event, token)) if token else None
        try:
            rec = self.store.call(Transition(rid, event, who, "m", [], token))
        except IllegalTransition as exc:
            assert (current, event) not in TRANSITIONS and earlier is None
            assert exc.current_status == current
            last = self.results[rid][-1] if self.results[rid] else {}
            assert (exc.last_processor_id, exc.last_result_id) == (last.get("processor_id", ""),
                                                                   last.get("result_id", ""))
            return
        except InvalidArgument:  # the token was used for this step by another processor
            assert earlier is not None and earlier["processor_id"] != who
            return
        if earlier is not None and (current, event) not in TRANSITIONS:
            assert rec == earlier  # a retry: the first attempt's answer, nothing written
            return
        assert TRANSITIONS[(current, event)] == rec["status"] and rec["request_id"] == rid
        self.status[rid] = rec["status"]
        self.results[rid].append(rec)
        if token:
            self.tokens[(rid, event, token)] = rec

    @rule(types=st.sampled_from([(), (TYPES[0],), (TYPES[1],), TYPES]), who=st.sampled_from(["w1", "w2"]),
          token=st.one_of(st.none(), st.sampled_from(["c1", "c2"])))
    def claim_next(self, types, who, token):
        earlier = self.tokens.get(("claim", who, token)) if token else None
        rec = self.store.call(ClaimNext(types, who, "m", token))
        if earlier is not None:
            assert rec == earlier
            return
        candidates = [r for r in self.order if self.status[r] == "OPEN" and (not types or self.kind[r] in types)]
        if not candidates:
            assert rec is None
            return
        assert rec["request_id"] == candidates[0] and rec["status"] == "IN_PROGRESS" and rec["processor_id"] == who
        self.status[candidates[0]] = "IN_PROGRESS"
        self.results[candidates[0]].append(rec)
        if token:
            self.tokens[("claim", who, token)] = rec

    @rule()
    def unknown_ticket(self):
        with pytest.raises(NotFound):
            self.store.call(Transition("00000000-0000-4000-8000-000000000000", Event.CONSUME, "w", "m"))

    @rule()
    def restart(self):
        self.store = self.ledgers.reopen()
        assert self.store.anomalies() == []

    @invariant()
    def backend_matches_model(self):
        if not hasattr(self, "store"):
            return
        for rid, status in self.status.items():
            view = self.store.ticket(rid)
            assert view.row["current_status"] == status and view.results == self.results[rid]
        counts = self.store.counts()
        assert counts == {s: sum(1 for v in self.status.values() if v == s) for s in STATUSES}
        requests, results = self.store.lines()
        assert len(requests) == len(self.status) and len(results) == sum(map(len, self.results.values()))


@pytest.mark.parametrize("kind", sorted(BACKENDS))
def test_backend_against_the_model(kind):
    machine = type(f"LedgerModel_{kind}", (LedgerModel,), {"KIND": kind})
    run_state_machine_as_test(machine, settings=settings(max_examples=60, stateful_step_count=30, deadline=None))
