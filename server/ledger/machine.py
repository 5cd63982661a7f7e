"""The ticket state machine (SPEC §2.3), as data. Pure: no I/O.

Events go in, the new status comes out, or one typed refusal. The table is
the whole rule: anything not in it is illegal, and DONE/FAILED are final.
"""
from __future__ import annotations

from enum import Enum

OPEN = "OPEN"
IN_PROGRESS = "IN_PROGRESS"
DONE = "DONE"
FAILED = "FAILED"

STATUSES = (OPEN, IN_PROGRESS, DONE, FAILED)
FINAL = frozenset({DONE, FAILED})


class Event(str, Enum):
    CONSUME = "consume"
    COMPLETE_DONE = "complete(DONE)"
    COMPLETE_FAILED = "complete(FAILED)"


# (current status, event) -> new status. Submit creates OPEN; it has no "from".
TRANSITIONS: dict[tuple[str, Event], str] = {
    (OPEN, Event.CONSUME): IN_PROGRESS,
    (IN_PROGRESS, Event.COMPLETE_DONE): DONE,
    (IN_PROGRESS, Event.COMPLETE_FAILED): FAILED,
}

# The event a result line's status stands for.
EVENT_FOR_RESULT_STATUS: dict[str, Event] = {
    IN_PROGRESS: Event.CONSUME,
    DONE: Event.COMPLETE_DONE,
    FAILED: Event.COMPLETE_FAILED,
}


class TransitionRefused(Exception):
    """The one error of the machine: ``event`` is not allowed from ``current``."""

    def __init__(self, current: str, event: Event) -> None:
        self.current = current
        self.event = event
        super().__init__(f"{event.value} is not allowed from {current}")


def next_status(current: str, event: Event) -> str:
    try:
        return TRANSITIONS[(current, event)]
    except KeyError:
        raise TransitionRefused(current, event) from None


def event_for_result(status: str) -> Event:
    """The event a TICKET_RESULT_V1 line with this status records."""
    try:
        return EVENT_FOR_RESULT_STATUS[status]
    except KeyError:
        raise ValueError(f"not a result status: {status!r}") from None
