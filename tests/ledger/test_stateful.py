"""Hypothesis stateful test: the store against a dict model, with restarts."""
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from server.errors import IllegalTransition, NotFound
from server.ledger.machine import Event
from server.ledger.backend import Submit, Transition
from server.ledger.jsonl.store import JsonlLedger

ALLOWED = {("OPEN", Event.CONSUME): "IN_PROGRESS",
           ("IN_PROGRESS", Event.COMPLETE_DONE): "DONE",
           ("IN_PROGRESS", Event.COMPLETE_FAILED): "FAILED"}


class LedgerModel(RuleBasedStateMachine):
    tickets = Bundle("tickets")

    @initialize()
    def open_store(self):
        self.dir = Path(tempfile.mkdtemp())
        self.store = JsonlLedger(self.dir, fsync=False).open()
        self.model: dict[str, str] = {}
        self.last_processor: dict[str, str] = {}

    def teardown(self):
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(target=tickets, key=st.one_of(st.none(), st.sampled_from(["a", "b", "c"])))
    def submit(self, key):
        out = self.store.call(Submit("ACKNOWLEDGE", {"message_id": "m"}, None, key))
        rid = out.request["request_id"]
        if out.appended:
            assert rid not in self.model
            self.model[rid] = "OPEN"
        else:
            assert rid in self.model
        return rid

    @rule(rid=tickets, event=st.sampled_from(list(Event)), who=st.sampled_from(["w1", "w2"]))
    def transition(self, rid, event, who):
        current = self.model[rid]
        try:
            rec = self.store.call(Transition(rid, event, who, "m"))
        except IllegalTransition as exc:
            assert (current, event) not in ALLOWED
            assert exc.current_status == current
            assert exc.last_processor_id == self.last_processor.get(rid, "")
            return
        assert ALLOWED[(current, event)] == rec["status"]
        self.model[rid] = rec["status"]
        self.last_processor[rid] = who

    @rule()
    def unknown_ticket(self):
        with pytest.raises(NotFound):
            self.store.call(Transition("00000000-0000-4000-8000-000000000000", Event.CONSUME, "w", "m"))

    @rule()
    def restart(self):
        self.store.close()
        self.store = JsonlLedger(self.dir, fsync=False).open()
        assert self.store.anomalies() == []

    @invariant()
    def index_matches_model(self):
        if not hasattr(self, "store"):
            return
        for rid, status in self.model.items():
            assert self.store.ticket(rid).row["current_status"] == status
        counts = self.store.counts()
        for s in ("OPEN", "IN_PROGRESS", "DONE", "FAILED"):
            assert counts[s] == sum(1 for v in self.model.values() if v == s)


LedgerModel.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestLedgerModel = LedgerModel.TestCase
