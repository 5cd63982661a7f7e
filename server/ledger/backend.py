"""LedgerBackend: the one way the server touches tickets.

Service code, the reaper, the cycle, metrics, the app and the CLI hold a
``LedgerBackend`` and nothing else of the ledger: they send it commands
(``Submit``, ``Transition``, ``ClaimNext``) and ask it named queries. How a
backend keeps its records (JSONL files under the data root, rows in a
database) is its own business; every backend passes ``tests/conformance``.

Promises every backend keeps (the conformance suite states them):

* a command is answered only once what it decided is durable (and a refusal
  only when nothing was written for it); commands of many callers may share
  one durable write (group commit);
* the decisions are the shared pure step ``opsledger.server.ledger.decide``, so every
  backend refuses and accepts exactly alike, with the same refusal details;
* the records a backend stores are the contract's lines, byte for byte
  (``lines()`` hands them back in log order);
* every query sees at least every command acknowledged (by any process or
  replica on the same data) before the query started.

Times are epoch seconds (int) in queries, the records' ISO strings in rows.
"""
from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from opsledger.server.ledger.machine import Event


# -- commands -------------------------------------------------------------------------
@dataclass
class Submit:
    """Record a new OPEN ticket (``payload`` already validated)."""

    request_type: str
    payload: dict
    trace_id: str | None
    idempotency_key: str | None


@dataclass
class Transition:
    """Consume or complete one ticket: ``event`` is checked against the state machine.
    ``token``: the caller's retry token (a repeat answers the first attempt's result)."""

    request_id: str
    event: Event
    processor_id: str
    message: str
    artifacts: list[str] = field(default_factory=list)
    token: str | None = None


@dataclass
class ClaimNext:
    """Claim the oldest OPEN ticket of ``types`` (all when empty). ``token``: the
    caller's retry token (a repeat by the same processor answers the same ticket)."""

    types: tuple[str, ...]
    processor_id: str
    message: str
    token: str | None = None


Command = Submit | Transition | ClaimNext


# -- outcomes and views -------------------------------------------------------------------
class Claimed(dict):
    """ClaimNext's answer: the claim's result record (a dict, as a Transition's
    answer is), and ``request``, the claimed ticket's request record, which the
    backend had at hand: the caller builds the ticket's row without reading it back."""

    __slots__ = ("request",)

    def __init__(self, result: dict, request: dict) -> None:
        super().__init__(result)
        self.request = request


@dataclass
class SubmitOutcome:
    """The stored request record; ``appended`` False when an idempotent repeat."""

    request: dict
    appended: bool


@dataclass
class TicketView:
    """One ticket: its board row, its request record and every result, oldest first.

    ``result_lines[i]`` is the 1-based line of ``results[i]`` in the results
    log (its evidence ref is ``<results log>:line<N>``, see ``result_line``).
    """

    row: dict
    request: dict
    results: list[dict]
    result_lines: list[int] = field(default_factory=list)


@dataclass
class StaleTicket:
    """An IN_PROGRESS ticket and the time of its last result."""

    request_id: str
    request_type: str
    last_processed_at: str


@dataclass
class Anomaly:
    """A stored record that is well-formed but not a valid step; skipped and reported."""

    file: str
    line_no: int
    reason: str


@dataclass
class Health:
    """What ``/healthz`` and the start-up log say about the ledger."""

    backend: str  # the backend's name, e.g. "jsonl"
    location: str  # where its data is (a folder, or a URL without its password)
    writable: bool  # False once the backend refuses writes (read-only after a failure)
    problem: str | None = None  # why it is not writable


@dataclass
class LedgerEvent:
    """One event of the ledger's log: a submission or a status change."""

    revision: str  # opaque token: the position just after this event
    kind: str  # "SUBMITTED" (record is the request line) or "TRANSITION" (a result line)
    request_id: str
    request_type: str
    status: str  # the ticket's new status (OPEN for a submission)
    record: dict  # the stored record, as written


BatchObserver = Callable[[int, float], None]  # (lines written in one commit, seconds the write took)


@runtime_checkable
class LedgerBackend(Protocol):
    """What a ledger backend implements. Blocking methods may be called from any thread."""

    name: str

    def open(self) -> LedgerBackend:
        """Blocking. Make the ledger ready (read or connect) and return self.
        Raises with a message naming the cause when it cannot serve."""

    def close(self) -> None:
        """Blocking. Finish every command already accepted, then release everything.
        Commands sent after close are not accepted."""

    # -- commands -------------------------------------------------------------------
    def execute(self, command: Command) -> concurrent.futures.Future:
        """Queue ``command``; the future resolves once its outcome is durable.

        Results: ``Submit`` -> ``SubmitOutcome``; ``Transition`` -> the result
        record (dict); ``ClaimNext`` -> ``Claimed`` (the result record of the
        claimed ticket and its request), or None when no OPEN ticket of those types exists.
        Refusals are exceptions of ``opsledger.server.errors``: ``NotFound`` (unknown
        ticket), ``IllegalTransition`` (with current_status,
        last_processor_id, last_result_id), ``InvalidArgument`` (an
        idempotency key reused for a different request), ``Unavailable`` (the
        backend cannot write now; nothing was written). A future cancelled
        before its command was decided leaves nothing written."""

    async def run(self, command: Command):
        """``execute`` awaited on the running event loop."""

    def call(self, command: Command, timeout: float | None = None):
        """``execute`` waited for in the calling thread."""

    # -- queries ------------------------------------------------------------------------
    def page(self, statuses: tuple[str, ...], types: tuple[str, ...], size: int,
             before: int | None) -> tuple[list[dict], int | None, int]:
        """Blocking. Board rows (TICKETS_BOARD_V1 dicts) matching the filters (empty =
        any), newest first, strictly after cursor ``before`` (None: from the top), at
        most ``size``. Returns (rows, cursor of the next page or None, total matching).
        Board order: requested_at descending, later submission first on equal times;
        a cursor is an int that stays valid while tickets are added."""

    def ticket(self, request_id: str) -> TicketView | None:
        """Blocking. One ticket, or None when there is no such ticket."""

    def counts(self) -> dict[str, int]:
        """Tickets by current status: every status of the machine is a key."""

    def finished_since(self, since: int) -> dict[str, int]:
        """{"DONE": n, "FAILED": n}: tickets whose final result is at or after ``since``."""

    def stale_in_progress(self, before: int, limit: int) -> tuple[list[StaleTicket], int]:
        """IN_PROGRESS tickets whose last result is older than ``before``: the oldest
        ``limit`` of them (oldest first; none when limit is 0) and how many there are."""

    def open_version(self) -> int:
        """A number that changes whenever a ticket may have become OPEN (a submit
        committed here, or data written by another process/replica was noticed)."""

    async def wait_for_open(self, types: tuple[str, ...], timeout: float, since: int) -> None:
        """Return once ``open_version()`` differs from ``since`` (a ticket of ``types``
        may be claimable), or after ``timeout`` seconds. May return early: callers
        simply try to claim again. Cancelling the wait leaves nothing behind."""

    # -- events (WatchTickets) ----------------------------------------------------------
    def head_revision(self) -> str:
        """Blocking. The revision just after the newest committed event (a token
        ``events_after`` accepts): "from now on"."""

    def events_after(self, after: str | None, limit: int) -> tuple[list[LedgerEvent], str]:
        """Blocking. At most ``limit`` events strictly after revision ``after``
        (None: from the ledger's beginning), in log order, and the revision
        reached (the last event's, or ``after`` itself when none).

        Log order is one total order, the same for every process and replica:
        committed batches in commit order, a ticket's request before its results.
        Only committed events are returned, and never one that could still be
        followed by an earlier one committing later. A token that is malformed
        or not of this ledger raises ``InvalidArgument`` naming ``after``."""

    def commit_version(self) -> int:
        """A number that changes whenever new events may be readable."""

    async def wait_for_commit(self, since: int, timeout: float) -> None:
        """Return once ``commit_version()`` differs from ``since`` or something
        was committed elsewhere, or after ``timeout``. May return early."""

    def lines(self) -> tuple[list[bytes], list[bytes]]:
        """Blocking. Every stored request line and result line (without newline), in
        log order: the contract's JSONL bytes, whatever the backend stores them in."""

    def result_line(self, n: int) -> bytes | None:
        """Blocking. Result line ``n`` (1-based, log order, counting skipped
        anomalies) as stored, or None past the end: the evidence behind
        ``state/tickets/ticket_results.jsonl:line<n>``."""

    def line_counts(self) -> tuple[int, int]:
        """Blocking. How many request lines and result lines the ledger holds."""

    # -- operations -----------------------------------------------------------------------
    def on_batch(self, observer: BatchObserver) -> None:
        """Call ``observer(lines, seconds)`` after each durable write (metrics);
        it runs on the writing thread and must be quick."""

    def health(self) -> Health:
        """Cheap; never blocks on the data."""

    def anomalies(self) -> list[Anomaly]:
        """Stored records skipped when the ledger was read (see ``Anomaly``)."""
