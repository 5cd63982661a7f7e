"""The ledger's decisions, pure: command + read-only view + now -> lines or a refusal.

In the style of h11's ``_state``: no I/O, no locks, no threads, no clock of
its own. Every backend calls ``decide`` for each command of a write batch,
in order, with

* a ``View`` of the ledger as stored before the batch (the JSONL backend's
  index; a SQL backend's rows of the tickets the batch touches, read in the
  batch's transaction),
* the ``Batch`` of what earlier commands of the same batch decided (so a
  consume right after a submit in one batch sees the OPEN ticket, and two
  claims in one batch never take the same ticket),
* ``now`` (the contract timestamp every line of the batch carries) and
  ``new_id`` (where fresh UUIDs come from),

and writes the batch's ``requests`` and ``results`` lines durably before it
answers anyone. The rules here are the whole of the ledger's decisions:
the state machine (``machine``), idempotent submit, claim-the-oldest-OPEN,
the refusal details, and retry tokens.

Retry tokens (AIP-155): a transition or claim may carry a client-chosen
token. Its result gets a *derived* id, a UUIDv5 of (token, what was asked),
instead of a random UUIDv4. A retry with the same token derives the same id
and finds the earlier result among the ticket's own results (consume,
complete) or through the view's ``claimed_with`` (claim-next): the retry
is answered with that result and nothing is written. No extra state is
kept: the version digit of a stored result_id says whether a token made it.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from opsledger.server.errors import IllegalTransition, InvalidArgument, NotFound, OpsledgerError
from opsledger.server.ledger import records
from opsledger.server.ledger.backend import ClaimNext, Command, Submit, SubmitOutcome, Transition
from opsledger.server.ledger.machine import IN_PROGRESS, OPEN, TransitionRefused, next_status

# Namespace of token-derived result ids (a fixed UUID: ids must not change between releases).
TOKEN_NAMESPACE = uuid.UUID("6f1c2a4e-93b4-4d0e-8a43-3f0c8b5d7e21")


def transition_result_id(token: str, request_id: str, event_value: str) -> str:
    """The result id a Transition with ``token`` gives its line (same inputs, same id)."""
    return str(uuid.uuid5(TOKEN_NAMESPACE, f"transition\n{event_value}\n{request_id}\n{token}"))


def claim_result_id(token: str, processor_id: str) -> str:
    """The result id a ClaimNext with ``token`` gives its line; the processor is part
    of it, so two workers that happen to pick the same token never share a claim."""
    return str(uuid.uuid5(TOKEN_NAMESPACE, f"claim\n{processor_id}\n{token}"))


class View(Protocol):
    """The stored ledger as a batch starts (read-only to ``decide``)."""

    def status(self, request_id: str) -> str | None:
        """Current status, or None for an unknown ticket."""

    def results(self, request_id: str) -> list[dict]:
        """The ticket's result records, oldest first (asked only for a refusal or a token)."""

    def request_with_key(self, idempotency_key: str) -> dict | None:
        """The first request record submitted with this idempotency key."""

    def open_in_order(self, types: tuple[str, ...]) -> Iterable[str]:
        """Ids of OPEN tickets of ``types`` (all when empty), oldest submission first."""

    def claimed_with(self, result_id: str) -> str | None:
        """The ticket whose IN_PROGRESS result has this token-derived id, if any
        (a ticket that is only likely to be it is fine: decide checks its results)."""


@dataclass
class SnapshotView:
    """A ``View`` from plain data: what a SQL backend loads for the tickets a batch
    touches (and the tests use). ``open_order``: OPEN request ids, oldest first."""

    statuses: dict[str, str] = field(default_factory=dict)
    request_types: dict[str, str] = field(default_factory=dict)
    history: dict[str, list[dict]] = field(default_factory=dict)
    keys: dict[str, dict] = field(default_factory=dict)
    open_order: list[str] = field(default_factory=list)
    claims: dict[str, str] = field(default_factory=dict)

    def status(self, request_id: str) -> str | None:
        return self.statuses.get(request_id)

    def results(self, request_id: str) -> list[dict]:
        return list(self.history.get(request_id, []))

    def request_with_key(self, idempotency_key: str) -> dict | None:
        return self.keys.get(idempotency_key)

    def open_in_order(self, types: tuple[str, ...]) -> Iterable[str]:
        return (rid for rid in self.open_order
                if self.statuses.get(rid) == OPEN and (not types or self.request_types.get(rid) in types))

    def claimed_with(self, result_id: str) -> str | None:
        return self.claims.get(result_id)

    def absorb(self, batch: Batch) -> None:
        """Take in a batch's lines as if they were stored (a backend's model of itself)."""
        for rec in batch.requests:
            rid = rec["request_id"]
            self.statuses[rid] = OPEN
            self.request_types[rid] = rec["request_type"]
            self.open_order.append(rid)
            if rec.get("idempotency_key") is not None:
                self.keys.setdefault(rec["idempotency_key"], rec)
        for rec in batch.results:
            rid = rec["request_id"]
            self.statuses[rid] = rec["status"]
            self.history.setdefault(rid, []).append(rec)
            if rec["status"] == IN_PROGRESS and records.made_by_token(rec["result_id"]):
                self.claims[rec["result_id"]] = rid


@dataclass
class Batch:
    """What the commands of one batch decided so far; what the backend will write.
    One batch is decided against one view."""

    requests: list[dict] = field(default_factory=list)
    results: list[dict] = field(default_factory=list)
    _status: dict[str, str] = field(default_factory=dict)  # request_id -> status decided here
    _added: dict[str, list[dict]] = field(default_factory=dict)  # request_id -> results decided here
    _new: dict[str, dict] = field(default_factory=dict)  # tickets submitted in this batch
    _keys: dict[str, dict] = field(default_factory=dict)  # idempotency key -> request decided here
    _claims: dict[str, str] = field(default_factory=dict)  # token-derived claim id -> request_id
    # Claim walks, per types asked: where the last claim stopped in the view's OPEN
    # tickets, and in ``requests``. A ticket walked past was moved by this batch and
    # stays moved, so each claim goes on from there: a batch of claims is linear.
    _open_walks: dict[tuple[str, ...], Iterator[str]] = field(default_factory=dict)
    _new_walks: dict[tuple[str, ...], int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.requests or self.results)

    def submitted(self, request_id: str) -> dict | None:
        """The request record of a ticket submitted in this batch."""
        return self._new.get(request_id)


@dataclass(frozen=True)
class Decision:
    """Accepted: ``answer`` is what the caller gets once the batch is durable.
    SubmitOutcome for Submit; the result record for Transition and ClaimNext
    (None when no ticket could be claimed)."""

    answer: object


@dataclass(frozen=True)
class Refusal:
    """Refused: nothing is written for this command; ``error`` is what the caller gets."""

    error: OpsledgerError


def decide(command: Command, view: View, batch: Batch, now: str,
           new_id: Callable[[], str] = records.new_id) -> Decision | Refusal:
    """Decide one command; an accepted command's lines are appended to ``batch``."""
    try:
        if isinstance(command, Submit):
            return Decision(_submit(command, view, batch, now, new_id))
        if isinstance(command, Transition):
            return Decision(_transition(command, view, batch, now, new_id))
        if isinstance(command, ClaimNext):
            return Decision(_claim(command, view, batch, now, new_id))
    except OpsledgerError as exc:
        return Refusal(exc)
    raise TypeError(f"not a ledger command: {command!r}")


# -- the rules ------------------------------------------------------------------------------
def _status(rid: str, view: View, batch: Batch) -> str:
    status = batch._status.get(rid)
    if status is None:
        status = view.status(rid)
    if status is None:
        raise NotFound("Ticket not found", resource_name=rid)
    return status


def _results(rid: str, view: View, batch: Batch) -> list[dict]:
    stored = [] if rid in batch._new else view.results(rid)
    return stored + batch._added.get(rid, [])


def _submit(cmd: Submit, view: View, batch: Batch, now: str, new_id: Callable[[], str]) -> SubmitOutcome:
    key = cmd.idempotency_key
    if key is not None:
        earlier = batch._keys.get(key) or view.request_with_key(key)
        if earlier is not None:
            same = (earlier["request_type"] == cmd.request_type and earlier["payload"] == cmd.payload
                    and earlier["trace_id"] == cmd.trace_id)
            if not same:
                raise InvalidArgument.one("idempotency_key", "was already used for a different request")
            return SubmitOutcome(earlier, appended=False)
    rec = records.request_record(new_id(), now, cmd.request_type, cmd.payload, cmd.trace_id, key)
    rid = rec["request_id"]
    batch.requests.append(rec)
    batch._status[rid] = OPEN
    batch._new[rid] = rec
    if key is not None:
        batch._keys[key] = rec
    return SubmitOutcome(rec, appended=True)


def _append_result(rid: str, status: str, result_id: str, processor_id: str, message: str,
                   artifacts: list[str], batch: Batch, now: str) -> dict:
    rec = records.result_record(result_id, rid, now, status, processor_id, message, list(artifacts))
    batch.results.append(rec)
    batch._status[rid] = status
    batch._added.setdefault(rid, []).append(rec)
    return rec


def _same_call(earlier: dict, cmd: Transition) -> bool:
    return (earlier["processor_id"] == cmd.processor_id and earlier["message"] == cmd.message
            and earlier["artifacts"] == list(cmd.artifacts))


def _transition(cmd: Transition, view: View, batch: Batch, now: str, new_id: Callable[[], str]) -> dict:
    rid = cmd.request_id
    current = _status(rid, view, batch)
    token_id = transition_result_id(cmd.token, rid, cmd.event.value) if cmd.token is not None else None
    try:
        status = next_status(current, cmd.event)
    except TransitionRefused:
        history = _results(rid, view, batch)
        if token_id is not None:
            for earlier in history:
                if earlier["result_id"] == token_id:  # a retry whose first attempt landed
                    if not _same_call(earlier, cmd):
                        raise InvalidArgument.one("idempotency_key", "was already used for a different request") from None
                    return earlier
        last = history[-1] if history else {}
        raise IllegalTransition(
            request_id=rid,
            current_status=current,
            attempted=cmd.event.value,
            last_processor_id=last.get("processor_id", ""),
            last_result_id=last.get("result_id", ""),
        ) from None
    return _append_result(rid, status, token_id or new_id(), cmd.processor_id, cmd.message, cmd.artifacts,
                          batch, now)


def _claim(cmd: ClaimNext, view: View, batch: Batch, now: str, new_id: Callable[[], str]) -> dict | None:
    token_id = claim_result_id(cmd.token, cmd.processor_id) if cmd.token is not None else None
    if token_id is not None:
        rid = batch._claims.get(token_id) or view.claimed_with(token_id)
        if rid is not None:  # a retry whose first attempt landed: the same ticket again
            for earlier in _results(rid, view, batch):
                if earlier["result_id"] == token_id:
                    return earlier
    chosen = _oldest_open(tuple(cmd.types), view, batch)
    if chosen is None:
        return None
    rec = _append_result(chosen, IN_PROGRESS, token_id or new_id(), cmd.processor_id, cmd.message, [], batch, now)
    if token_id is not None:
        batch._claims[token_id] = chosen
    return rec


def _oldest_open(types: tuple[str, ...], view: View, batch: Batch) -> str | None:
    """Tickets OPEN before the batch, oldest first, unless this batch moved them;
    then tickets submitted in this very batch. The caller claims what it gets."""
    walk = batch._open_walks.get(types)
    if walk is None:
        walk = batch._open_walks[types] = iter(view.open_in_order(types))
    for rid in walk:
        if rid not in batch._status:
            return rid
    at = batch._new_walks.get(types, 0)
    while at < len(batch.requests):
        rec = batch.requests[at]
        if batch._status[rec["request_id"]] == OPEN and (not types or rec["request_type"] in types):
            batch._new_walks[types] = at
            return rec["request_id"]
        at += 1
    batch._new_walks[types] = at
    return None
