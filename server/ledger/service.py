"""TicketService over grpc.aio: a thin shell from protos to the ledger backend.

Validation is the pure code of ``validation``; decisions are the backend's
(``opsledger.server.ledger.decide``); this module only converts messages and maps
refusals to statuses.
"""
from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

from google.protobuf import json_format

from opsledger.server.artifacts.store import ArtifactStore
from opsledger.server.common.clock import Clock
from opsledger.server.common.rawpath import line_ref
from opsledger.server.errors import InvalidArgument, NotFound, Unavailable, Violation
from opsledger.server.ledger import paging, reaper, records, validation
from opsledger.server.ledger.backend import ClaimNext, LedgerBackend, LedgerEvent, Submit, Transition
from opsledger.server.ledger.machine import Event
from opsledger.server.ledger.records import RESULTS_REF
from opsledger.server.ledger.watch import Feed, ShuttingDown, Watcher
from opsledger.server.rpc_status import refusals_to_status
from opsledger.server.tracing import carried_trace_id
from opsledger.v1 import tickets_pb2 as pb
from opsledger.v1 import tickets_pb2_grpc

STATUS_NAME = pb.TicketStatus.Value.Name
TYPE_NAME = pb.RequestType.Value.Name


def _enum_name(name_of: Callable[[int], str], value: int, where: str) -> str:
    try:
        name = name_of(value)
    except ValueError:
        raise InvalidArgument.one(where, f"unknown enum value {value}") from None
    return "" if name == "VALUE_UNSPECIFIED" else name


_TYPE_NUMBER = {name: pb.RequestType.Value.Value(name) for name in pb.RequestType.Value.keys()}  # noqa: SIM118 - an enum wrapper, not a dict
_STATUS_NUMBER = {name: pb.TicketStatus.Value.Value(name) for name in pb.TicketStatus.Value.keys()}  # noqa: SIM118 - an enum wrapper, not a dict


def _row_fields(row: dict) -> dict:
    # None leaves an optional field unset (null in JSON)
    return dict(
        request_id=row["request_id"],
        requested_at=row["requested_at"],
        request_type=_TYPE_NUMBER[row["request_type"]],
        current_status=_STATUS_NUMBER[row["current_status"]],
        trace_id=row["trace_id"],
        last_message=row["last_message"],
        last_processed_at=row["last_processed_at"],
    )


def row_message(row: dict) -> pb.BoardRow:
    msg = pb.BoardRow(**_row_fields(row))
    msg.payload.update(row["payload"])
    return msg


def add_rows(target, rows: list[dict]) -> None:
    """Board rows built in place in a repeated field (no per-row copy into the reply)."""
    add = target.add
    for row in rows:
        add(**_row_fields(row)).payload.update(row["payload"])


def request_message(rec: dict) -> pb.TicketRequest:
    return json_format.ParseDict(rec, pb.TicketRequest())


def result_message(rec: dict) -> pb.TicketResult:
    return json_format.ParseDict(rec, pb.TicketResult())


_KIND = {"SUBMITTED": pb.TicketEvent.Kind.SUBMITTED, "TRANSITION": pb.TicketEvent.Kind.TRANSITION}


def event_message(event: LedgerEvent) -> pb.TicketEvent:
    msg = pb.TicketEvent(revision=event.revision, kind=_KIND[event.kind], request_id=event.request_id,
                         status=_STATUS_NUMBER[event.status])  # type: ignore[arg-type]
    if event.request_type:
        msg.request_type = _TYPE_NUMBER[event.request_type]  # type: ignore[assignment]
    if event.kind == "SUBMITTED":
        msg.request.CopyFrom(request_message(event.record))
    else:
        msg.result.CopyFrom(result_message(event.record))
    return msg


def progress_message(revision: str) -> pb.TicketEvent:
    return pb.TicketEvent(revision=revision, kind=pb.TicketEvent.Kind.PROGRESS)


class TicketService(tickets_pb2_grpc.TicketServiceServicer):
    def __init__(self, store: LedgerBackend, clock: Clock, artifacts: ArtifactStore) -> None:
        self.store = store
        self.clock = clock
        self.artifacts = artifacts  # where the reaper's reports go; RAW_PATH_ONLY for a completion's artifacts
        self.feed = Feed(store, event_message)

    def close_watchers(self) -> None:
        """Server stopping: every watch ends now with UNAVAILABLE naming its revision."""
        self.feed.close()

    @refusals_to_status
    async def WatchTickets(self, request: pb.WatchTicketsRequest, context) -> None:
        violations: list[Violation] = []
        statuses = frozenset(_names(STATUS_NAME, request.status, "status", violations))
        types = frozenset(_names(TYPE_NAME, request.request_type, "request_type", violations))
        if violations:
            raise InvalidArgument(violations)
        if self.feed.closing:
            raise Unavailable("server is shutting down")
        if request.after:
            await asyncio.to_thread(self.store.events_after, request.after, 0)  # refuses a bad token
            revision, start = request.after, request.after
        elif request.from_beginning:  # only without after (an EventSource resuming keeps its URL)
            revision, start = None, (await asyncio.to_thread(self.store.events_after, None, 0))[1]
        else:
            revision = start = await asyncio.to_thread(self.store.head_revision)

        def keep(event: LedgerEvent) -> bool:
            return (not statuses or event.status in statuses) and (not types or event.request_type in types)

        watcher = Watcher(self.feed, self.store, revision, keep)
        self.feed.attach()
        try:
            await context.write(progress_message(start))  # the stream is open; here is where it starts
            async for batch in watcher.batches():
                if batch is None:
                    await context.write(progress_message(watcher.revision))  # type: ignore[arg-type]
                    continue
                for _event, message in batch:
                    await context.write(message)
        except ShuttingDown as exc:
            raise Unavailable(f"server is shutting down; resume with after={exc.revision}") from None
        finally:
            self.feed.detach()

    @refusals_to_status
    async def SubmitTicket(self, request: pb.SubmitTicketRequest, context) -> pb.SubmitTicketResponse:
        request_type = _enum_name(TYPE_NAME, request.request_type, "request_type")
        payload = json_format.MessageToDict(request.payload) if request.HasField("payload") else None
        # An empty trace id is none (stored null, never ""); without one, the
        # caller's W3C traceparent names the trace.
        trace_id = request.trace_id or carried_trace_id(context.invocation_metadata())
        key = validation.retry_token(request)
        clean = validation.check_submit(request.schema, request_type, payload, trace_id, key)
        outcome = await self.store.run(Submit(request_type, clean, trace_id, key))
        return pb.SubmitTicketResponse(
            result="OK",
            request_id=outcome.request["request_id"],
            requested_at=outcome.request["requested_at"],
            status=pb.TicketStatus.OPEN,
            appended=outcome.appended,
        )

    @refusals_to_status
    async def ConsumeTicket(self, request: pb.ConsumeTicketRequest, context) -> pb.ConsumeTicketResponse:
        message = request.message if request.HasField("message") else None
        token = validation.retry_token(request)
        rid, processor, text = validation.check_consume(request.request_id, request.processor_id, message, token)
        rec = await self.store.run(Transition(rid, Event.CONSUME, processor, text, token=token))
        return pb.ConsumeTicketResponse(
            result="OK", request_id=rid, new_status=pb.TicketStatus.IN_PROGRESS, result_id=rec["result_id"]
        )

    @refusals_to_status
    async def CompleteTicket(self, request: pb.CompleteTicketRequest, context) -> pb.CompleteTicketResponse:
        status = _enum_name(STATUS_NAME, request.status, "status")
        token = validation.retry_token(request)
        check = functools.partial(
            validation.check_complete,
            request.request_id,
            status,
            request.processor_id,
            request.message,
            list(request.artifacts),
            self.artifacts.check_ref,
            token,
        )
        # A ref's check may follow symlinks on disk (the files store): off the loop when there are refs.
        rid, status, processor, message, artifacts = (
            await asyncio.to_thread(check) if request.artifacts else check())
        event = Event.COMPLETE_DONE if status == "DONE" else Event.COMPLETE_FAILED
        rec = await self.store.run(Transition(rid, event, processor, message, artifacts, token))
        return pb.CompleteTicketResponse(
            result="OK", request_id=rid, new_status=pb.TicketStatus.Value.Value(status), result_id=rec["result_id"]  # type: ignore[arg-type]
        )

    @refusals_to_status
    async def GetBoard(self, request: pb.GetBoardRequest, context) -> pb.GetBoardResponse:
        violations: list[Violation] = []
        statuses = _names(STATUS_NAME, request.status, "status", violations)
        types = _names(TYPE_NAME, request.request_type, "request_type", violations)
        if violations:
            raise InvalidArgument(violations)
        size = paging.page_size(request.page_size)
        before = paging.read_token(request.page_token, statuses, types)
        while True:
            rows, cursor, total = await asyncio.to_thread(self.store.page, statuses, types, size, before)
            reply = pb.GetBoardResponse(status="ready", schema="TICKETS_BOARD_V1", asof=self.clock.now_iso(),
                                        total_count=total)
            add_rows(reply.rows, rows)
            if paging.whole_page_fits(reply.ByteSize()):
                break
            fit = paging.rows_that_fit([m.ByteSize() for m in reply.rows])
            if fit >= len(rows):
                break
            # A page is at most page_size rows AND fits the message limit: ask
            # again for the rows that fit, so the cursor is that page's own.
            size = fit
        reply.row_count = len(rows)
        reply.next_page_token = paging.make_token(cursor, statuses, types) if cursor is not None else ""
        return reply

    @refusals_to_status
    async def ConsumeNext(self, request: pb.ConsumeNextRequest, context) -> pb.ConsumeNextResponse:
        violations: list[Violation] = []
        types = _names(TYPE_NAME, request.request_types, "request_types", violations)
        if violations:
            raise InvalidArgument(violations)
        message = request.message if request.HasField("message") else None
        token = validation.retry_token(request)
        processor, text, wait = validation.check_consume_next(request.processor_id, message, request.wait_seconds,
                                                              token)
        left = context.time_remaining()
        if left is not None:
            wait = max(0.0, min(wait, left - 0.25))  # answer before the caller's deadline
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            seen = self.store.open_version()  # read before the attempt: no wake-up is missed
            rec = await self.store.run(ClaimNext(types, processor, text, token))
            if rec is not None:
                return pb.ConsumeNextResponse(
                    result="OK", claimed=True, request_id=rec["request_id"],
                    new_status=pb.TicketStatus.IN_PROGRESS, result_id=rec["result_id"],
                    ticket=row_message(records.board_row(rec.request, rec)),
                )
            left = deadline - loop.time()
            if left <= 0:
                return pb.ConsumeNextResponse(result="EMPTY", claimed=False)
            await self.store.wait_for_open(types, left, seen)

    @refusals_to_status
    async def ReapStaleTickets(self, request: pb.ReapStaleTicketsRequest, context) -> pb.ReapStaleTicketsResponse:
        body, snapshot = await asyncio.to_thread(
            reaper.run, self.store, self.artifacts, self.clock, request.threshold_seconds, request.max_clean, request.dry_run
        )
        response = pb.ReapStaleTicketsResponse(report=json_format.ParseDict(body, pb.ReaperReport()))
        if snapshot is not None:
            response.snapshot_ref = snapshot
        return response

    @refusals_to_status
    async def GetTicket(self, request: pb.GetTicketRequest, context) -> pb.GetTicketResponse:
        rid = validation.check_request_id(request.request_id)
        view = await asyncio.to_thread(self.store.ticket, rid)
        if view is None:
            raise NotFound("Ticket not found", resource_name=rid)
        return pb.GetTicketResponse(
            row=row_message(view.row),
            request=request_message(view.request),
            results=[result_message(r) for r in view.results],
            result_refs=[line_ref(RESULTS_REF, n) for n in view.result_lines],
        )




def _names(name_of, values, where: str, violations: list[Violation]) -> tuple[str, ...]:
    out = []
    for value in values:
        try:
            name = _enum_name(name_of, value, where)
        except InvalidArgument as exc:
            violations.extend(exc.violations)
            continue
        if not name:
            violations.append(Violation(where, "VALUE_UNSPECIFIED is not a filter value"))
        elif name not in out:
            out.append(name)
    return tuple(out)
