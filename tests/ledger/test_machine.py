import itertools

import pytest

from opsledger.server.ledger.machine import (
    DONE,
    FAILED,
    IN_PROGRESS,
    OPEN,
    STATUSES,
    TRANSITIONS,
    Event,
    TransitionRefused,
    next_status,
)

ALLOWED = {
    (OPEN, Event.CONSUME): IN_PROGRESS,
    (IN_PROGRESS, Event.COMPLETE_DONE): DONE,
    (IN_PROGRESS, Event.COMPLETE_FAILED): FAILED,
}


def test_table_is_exactly_the_seed_state_machine():
    assert TRANSITIONS == ALLOWED


@pytest.mark.parametrize("current,event", list(itertools.product(STATUSES, Event)))
def test_every_pair_is_allowed_or_refused(current, event):
    if (current, event) in ALLOWED:
        assert next_status(current, event) == ALLOWED[(current, event)]
    else:
        with pytest.raises(TransitionRefused) as info:
            next_status(current, event)
        assert info.value.current == current and info.value.event is event


@pytest.mark.parametrize("final", [DONE, FAILED])
def test_final_states_have_no_way_out(final):
    for event in Event:
        with pytest.raises(TransitionRefused):
            next_status(final, event)
