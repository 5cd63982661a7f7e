"""EvidenceService over grpc.aio: a ref -> EVIDENCE_VIEW_V1 (SPEC §7.1).

Backend-agnostic: report files come through the ``ArtifactStore``
(``read(ref)``: the stored bytes, None when nothing is stored, RawPathError
for a ref that escapes the root) and ledger lines through the
``LedgerBackend``'s named queries ``result_line(n)`` and ``line_counts()``;
nothing here opens a file.
"""
from __future__ import annotations

import asyncio

from google.protobuf import json_format

from opsledger.client.limits import MAX_MESSAGE_BYTES
from opsledger.server.artifacts.store import ArtifactStore, RawPathError
from opsledger.server.common.clock import Clock
from opsledger.server.errors import InvalidRef, ViewNotFound
from opsledger.server.evidence import refs, view
from opsledger.server.ledger.backend import LedgerBackend
from opsledger.server.rpc_status import refusals_to_status
from opsledger.v1 import evidence_pb2 as pb
from opsledger.v1 import evidence_pb2_grpc

# A view must fit one gRPC message with room to spare.
MAX_EVIDENCE_BYTES = MAX_MESSAGE_BYTES // 2


class Resolver:
    """Blocking resolution of one ref (run it off the event loop)."""

    def __init__(self, artifacts: ArtifactStore, ledger: LedgerBackend, clock: Clock) -> None:
        self.artifacts = artifacts
        self.ledger = ledger
        self.clock = clock

    def resolve(self, ref: str) -> dict:
        asof = self.clock.now_iso()
        try:
            ev = refs.classify(ref)
        except refs.InvalidRef as exc:
            raise InvalidRef("INVALID_REF", f"ref: {exc}", view.SCHEMA, asof, "ref") from None
        if ev.kind == refs.JSONL_FILE:
            counts = dict(zip(refs.LEDGER_LOGS, self.ledger.line_counts()))
            return view.log_summary(ev, counts[ev.path], asof)
        if ev.kind == refs.JSONL_LINE:
            assert ev.line is not None  # a line ref always has its line number
            raw = self.ledger.result_line(ev.line)
        else:
            try:
                raw = self.artifacts.read(ev.path)
            except RawPathError as exc:  # e.g. a symlink out of the data root
                raise InvalidRef("INVALID_REF", f"ref: {exc}", view.SCHEMA, asof, "ref") from None
        if raw is None:
            raise ViewNotFound("NOT_FOUND", f"ref: nothing is stored at {ref}", view.SCHEMA, asof)
        if len(raw) > MAX_EVIDENCE_BYTES:
            return view.failed("TOO_LARGE", f"{ref}: over {MAX_EVIDENCE_BYTES} bytes; read it on the host",
                               asof, raw)
        return view.from_bytes(ev, raw, asof)


class EvidenceService(evidence_pb2_grpc.EvidenceServiceServicer):
    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver

    @refusals_to_status
    async def ResolveEvidence(self, request: pb.ResolveEvidenceRequest, context) -> pb.ResolveEvidenceResponse:
        body = await asyncio.to_thread(self.resolver.resolve, request.ref)
        try:
            return json_format.ParseDict(body, pb.ResolveEvidenceResponse())
        except json_format.ParseError as exc:  # e.g. JSON nested deeper than protobuf allows
            return json_format.ParseDict(
                view.failed("PARSE_ERROR", f"{request.ref}: not representable ({exc})", body["asof"]),
                pb.ResolveEvidenceResponse())
