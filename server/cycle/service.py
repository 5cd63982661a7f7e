"""CycleService over grpc.aio: RunCycle runs the runner off the event loop.

GetLatestCycle answers the LIVE_CYCLE_RECEIPT_V1 envelope legacy callers
read: schema, asof, status, row_count, rows (the receipt as stored),
snapshots, error (NO_CYCLE_YET before any cycle).
"""
from __future__ import annotations

import asyncio
import json
from datetime import datetime

from google.protobuf import json_format

from opsledger.server.cycle import receipt as receipt_step
from opsledger.server.cycle.runner import CycleRunner, ReceiptNotWritten
from opsledger.server.cycle.summary import WINDOW_HOURS
from opsledger.server.errors import CycleRefused, NotRecorded
from opsledger.server.ledger import validation
from opsledger.server.ledger.backend import LedgerBackend
from opsledger.server.rpc_status import refusals_to_status
from opsledger.v1 import cycle_pb2 as pb
from opsledger.v1 import cycle_pb2_grpc
from opsledger.v1.view_pb2 import ViewError

STALE_IN_PROGRESS_S = 86400  # the reaper's default threshold
CONFIRM_HOW = 'send {"confirm": true} as the JSON body, or POST /api/live/cycle/run?confirm=true with no body'
NO_CYCLE_YET = "no live cycle has run yet (POST /api/live/cycle/run?confirm=true runs one)"


def ledger_view(store: LedgerBackend, stale_after_s: int = STALE_IN_PROGRESS_S):
    """Ticket counts for the ops summary, from the backend's named queries (no scan)."""

    def view(now: datetime):
        epoch = int(now.timestamp())
        counts = store.counts()
        finished = store.finished_since(epoch - WINDOW_HOURS * 3600)
        _none, stale = store.stale_in_progress(epoch - stale_after_s, 0)
        return counts, {"done": finished["DONE"], "failed": finished["FAILED"], "stale_in_progress": stale}

    return view


def receipt_message(receipt: dict) -> pb.Receipt:
    return json_format.ParseDict(receipt, pb.Receipt())


class CycleService(cycle_pb2_grpc.CycleServiceServicer):
    def __init__(self, runner: CycleRunner, metrics=None, clock=None) -> None:
        self.runner = runner
        self.metrics = metrics
        self.clock = clock or runner.clock

    @refusals_to_status
    async def RunCycle(self, request: pb.RunCycleRequest, context) -> pb.RunCycleResponse:
        if not request.confirm:
            raise CycleRefused(f"confirm: must be true to run a live cycle; {CONFIRM_HOW}")
        token = validation.check_idempotency_key(validation.retry_token(request))
        try:
            receipt = await asyncio.to_thread(self.runner.run, token)
        except ReceiptNotWritten as exc:
            if self.metrics is not None:
                self.metrics.cycles.labels("NO_RECEIPT").inc()
            # The steps ran and wrote reports: UNAVAILABLE would invite a
            # retry that runs the whole cycle again.
            raise NotRecorded(f"{exc}; the cycle's steps ran (do not repeat blindly)", "CYCLE_NOT_RECORDED",
                              {"cycle_id": exc.cycle_id, **exc.refs}) from None
        if self.metrics is not None:
            self.metrics.cycles.labels(receipt["result"]).inc()
        return pb.RunCycleResponse(receipt=receipt_message(receipt))

    @refusals_to_status
    async def GetLatestCycle(self, request: pb.GetLatestCycleRequest, context) -> pb.GetLatestCycleResponse:
        receipt, snapshots = await asyncio.to_thread(self._latest)
        envelope = {"schema": receipt_step.SCHEMA, "asof": self.clock.now_iso(), "snapshots": snapshots}
        if receipt is None:
            return pb.GetLatestCycleResponse(
                status="no_cycle_yet", row_count=0,
                error=ViewError(code="NO_CYCLE_YET", message=NO_CYCLE_YET), **envelope)
        return pb.GetLatestCycleResponse(status="ready", row_count=1, rows=[receipt_message(receipt)], **envelope)

    @refusals_to_status
    async def GetLatestReco(self, request: pb.GetLatestRecoRequest, context) -> pb.GetLatestRecoResponse:
        raw = await asyncio.to_thread(self.runner.artifacts.read_latest, "reco")
        report = None if raw is None else json.loads(raw)
        if report is None:
            return pb.GetLatestRecoResponse(status="no_reco_yet")
        return pb.GetLatestRecoResponse(status="ready", report=json_format.ParseDict(report, pb.RecoReport()))

    def _latest(self):
        raw = self.runner.artifacts.read_latest("cycle")
        receipt = None if raw is None else json.loads(raw)
        return receipt, self.runner.artifacts.snapshots("cycle")
