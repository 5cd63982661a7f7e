"""Jepsen-style histories: every call a client made, and a checker that proves
the exported ledger is consistent with them.

A call's outcome is ``ok`` (answered), ``refused`` (a refusal that promises
nothing was done: FAILED_PRECONDITION, INVALID_ARGUMENT, NOT_FOUND, ...) or
``unknown`` (a timeout, UNAVAILABLE or INTERNAL after the request was sent: it
may or may not have happened). The checker reads an ``opsledger export`` (the
two JSONL logs) and the board a replica serves after healing.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import grpc
import orjson
from google.rpc import error_details_pb2

from opsledger.server.ledger.records import REQUESTS_REF, RESULTS_REF
from opsledger.server.rpc_status import decode_details

FINAL = {"DONE", "FAILED", "CANCELED", "EXPIRED"}
UNKNOWN_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL,
                 grpc.StatusCode.UNKNOWN, grpc.StatusCode.CANCELLED, grpc.StatusCode.RESOURCE_EXHAUSTED}


@dataclass
class Op:
    kind: str  # submit | consume | complete
    key: str  # the idempotency key the call (and its retries) carried
    client: str
    invoke: float
    complete: float = 0.0
    outcome: str = ""  # ok | refused | unknown
    request_id: str = ""  # the ticket (submit: the answer's, when ok)
    processor: str = ""
    status: str = ""  # complete: the terminal status asked for
    code: str = ""
    reason: str = ""  # the error's ErrorInfo reason (e.g. COMMIT_OUTCOME_UNKNOWN: a COMMIT whose answer was lost)


@dataclass
class History:
    ops: list[Op] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def call(self, op: Op, fn) -> Op:
        """Run ``fn()`` and record ``op`` with its outcome; returns the op."""
        try:
            answer = fn()
        except grpc.RpcError as exc:
            op.outcome = "unknown" if exc.code() in UNKNOWN_CODES else "refused"
            op.code = exc.code().name
            op.reason = error_reason(exc)
        else:
            op.outcome = "ok"
            if op.kind == "submit":
                op.request_id = answer.request_id
        op.complete = time.monotonic()
        with self._lock:
            self.ops.append(op)
        return op

    def counts(self) -> dict[str, int]:
        out = {"ok": 0, "refused": 0, "unknown": 0}
        for op in self.ops:
            out[op.outcome] += 1
        return out


_ERROR_INFO = error_details_pb2.ErrorInfo.DESCRIPTOR.full_name


def error_reason(exc: grpc.RpcError) -> str:
    """The ErrorInfo reason a failed call carries ("" when it carries none)."""
    return next((d.get("reason", "") for d in decode_details(exc) if d["@type"] == _ERROR_INFO), "")


def _lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def replay(requests: list[dict], results: list[dict]) -> dict[str, str]:
    """Current status per ticket: OPEN, then each result line in log order."""
    status = {r["request_id"]: "OPEN" for r in requests}
    for r in results:
        status[r["request_id"]] = r["status"]
    return status


def check(history: History, export: Path, board: dict[str, str]) -> list[str]:
    """Every property the partition scenarios promise; returns the violations (none = pass)."""
    requests = _lines(export / REQUESTS_REF)
    results = _lines(export / RESULTS_REF)
    bad: list[str] = []
    by_key: dict[str, list[dict]] = {}
    for r in requests:
        if r.get("idempotency_key"):
            by_key.setdefault(r["idempotency_key"], []).append(r)
    ids = {r["request_id"] for r in requests}
    progress: dict[str, list[dict]] = {}
    final: dict[str, list[dict]] = {}
    for r in results:
        if r["status"] == "IN_PROGRESS":
            progress.setdefault(r["request_id"], []).append(r)
        elif r["status"] in FINAL:
            final.setdefault(r["request_id"], []).append(r)
    for rid, lines in progress.items():
        if len(lines) > 1:
            bad.append(f"{rid}: {len(lines)} IN_PROGRESS lines")
    for rid, lines in final.items():
        if len(lines) > 1:
            bad.append(f"{rid}: {len(lines)} terminal lines")
    for r in results:
        if r["request_id"] not in ids:
            bad.append(f"result {r['result_id']} for a ticket never submitted")
    # Submits: a key (one logical submit and its retries) has at most one effect,
    # and exactly the answered one when any attempt was ok.
    submits: dict[str, list[Op]] = {}
    for op in history.ops:
        if op.kind == "submit":
            submits.setdefault(op.key, []).append(op)
    for key, stored in by_key.items():
        if len(stored) > 1:
            bad.append(f"submit key {key}: {len(stored)} tickets")
    for key, attempts in submits.items():
        stored = by_key.get(key, [])
        oks = {op.request_id for op in attempts if op.outcome == "ok"}
        if len(oks) > 1:
            bad.append(f"submit key {key}: retries answered different tickets {sorted(oks)}")
        if oks and [r["request_id"] for r in stored] != sorted(oks):
            bad.append(f"submit key {key}: ok as {sorted(oks)} but stored {[r['request_id'] for r in stored]}")
        if stored and all(op.outcome == "refused" for op in attempts):
            bad.append(f"submit key {key}: refused yet stored")
    # Transitions: an ok one is in the log with its processor; a refused one left
    # no line by this processor; unknown ones left at most one (checked above).
    for op in history.ops:
        if op.kind == "consume":
            mine = [r for r in progress.get(op.request_id, []) if r["processor_id"] == op.processor]
            if op.outcome == "ok" and not mine:
                bad.append(f"consume {op.request_id} by {op.processor} ok but no IN_PROGRESS line by it")
            if op.outcome == "refused" and mine and not _any_ok(history, "consume", op.request_id):
                bad.append(f"consume {op.request_id} by {op.processor} refused yet recorded")
        elif op.kind == "complete":
            mine = [r for r in final.get(op.request_id, [])
                    if r["processor_id"] == op.processor and r["status"] == op.status]
            if op.outcome == "ok" and not mine:
                bad.append(f"complete {op.request_id} {op.status} by {op.processor} ok but not in the log")
            if op.outcome == "refused" and mine and not _any_ok(history, "complete", op.request_id):
                bad.append(f"complete {op.request_id} by {op.processor} refused yet recorded")
    expected = replay(requests, results)
    if board != expected:
        diff = sorted(set(board.items()) ^ set(expected.items()))[:5]
        bad.append(f"board != replay of the export ({len(board)} vs {len(expected)} tickets; e.g. {diff})")
    return bad


def _any_ok(history: History, kind: str, rid: str) -> bool:
    return any(op.kind == kind and op.request_id == rid and op.outcome == "ok" for op in history.ops)


def lost_answers(history: History, export: Path) -> dict[str, int]:
    """Calls answered COMMIT_OUTCOME_UNKNOWN (the COMMIT's answer was lost): how many
    landed (their effect is in the export) and how many of those a retry under the
    same idempotency key then answered ok (the checker proves it was that one effect)."""
    requests = _lines(export / REQUESTS_REF)
    results = _lines(export / RESULTS_REF)
    keys = {r.get("idempotency_key") for r in requests}
    lines = {(r["request_id"], r["processor_id"], r["status"]) for r in results}

    def landed(op: Op) -> bool:
        if op.kind == "submit":
            return op.key in keys
        return (op.request_id, op.processor, "IN_PROGRESS" if op.kind == "consume" else op.status) in lines

    out = {"lost": 0, "landed": 0, "converged": 0}
    for op in history.ops:
        if op.outcome != "unknown" or op.reason != "COMMIT_OUTCOME_UNKNOWN":
            continue
        out["lost"] += 1
        if landed(op):
            out["landed"] += 1
            out["converged"] += any(o.kind == op.kind and o.key == op.key and o.outcome == "ok"
                                    and o.invoke > op.invoke for o in history.ops)
    return out


# -- the live cycle under partitions -----------------------------------------------------------

@dataclass
class Write:
    """One artifact row written, as the database saw it (the scenario's audit trigger)."""

    path: str
    writer_addr: str | None  # the writing session's client address (None: the unix socket)
    at: datetime  # when the row was written (inside its transaction)
    committed: datetime  # its transaction's commit time (track_commit_timestamp)
    holder_pid: int | None  # the session holding the cycle lock at that moment, if any
    holder_addr: str | None
    holder_start: datetime | None  # that session's start (pids are reused; this is not)


def check_cycles(calls: list[Op], stored: dict[str, bytes], writes: list[Write],
                 ended: dict[int, list[datetime]]) -> list[str]:
    """What the cycle lock promises, proved from the database after the run.

    ``calls``: every RunCycle call (kind "cycle", request_id = the answered cycle id);
    ``stored``: every artifact row (path -> bytes); ``writes``: every row written by a
    replica; ``ended``: when each backend pid's session ended (the server's log).
    Checks: every receipt is whole (seed key order, integrity hash, every ref stored,
    its own snapshot ref); one receipt per cycle id; an ok call's receipt is stored and
    a CYCLE_NOT_RECORDED one's is not; every write was made while the writer's own
    replica held the cycle lock; a receipt committed before the lock session it was
    written under ended; receipts' cycles (first report written .. receipt committed)
    never overlap."""
    from opsledger.server.artifacts import layout
    from opsledger.server.common.canonical import report_sha256
    from opsledger.server.cycle.verify import key_order_problems, refs_of

    bad: list[str] = []
    folder = layout.kind("cycle").snapshot_dir + "/"
    by_path = {w.path: w for w in writes if "/snapshots/" in w.path}  # a snapshot is written once
    receipts: dict[str, dict] = {}
    for path, data in stored.items():
        if not path.startswith(folder):
            continue
        try:
            receipt = orjson.loads(data)
        except orjson.JSONDecodeError:
            receipt = None
        if not isinstance(receipt, dict):
            bad.append(f"{path}: not a JSON object")
            continue
        bad += [f"{path}: {p}" for p in key_order_problems(receipt)]
        if (receipt.get("integrity") or {}).get("payload_sha256") != report_sha256(receipt):
            bad.append(f"{path}: integrity hash does not verify")
        bad += [f"{path}: ref {ref} not stored" for ref in refs_of(receipt) if ref not in stored]
        if receipt.get("snapshot_ref") != path:
            bad.append(f"{path}: says it is {receipt.get('snapshot_ref')}")
        if receipt.get("cycle_id") in receipts:
            bad.append(f"cycle {receipt.get('cycle_id')}: two receipts")
        receipts[receipt.get("cycle_id")] = receipt | {"_path": path}
    for op in calls:
        if op.outcome == "ok" and op.request_id not in receipts:
            bad.append(f"RunCycle {op.key} on {op.client} ok ({op.request_id}) but no receipt stored")
        if op.reason == "CYCLE_NOT_RECORDED" and op.request_id in receipts:
            bad.append(f"RunCycle {op.key} on {op.client} answered CYCLE_NOT_RECORDED yet its receipt is stored")
    for w in writes:
        if w.writer_addr is not None and w.holder_addr != w.writer_addr:
            bad.append(f"{w.path} written by {w.writer_addr} while the cycle lock was held by "
                       f"{w.holder_addr or 'no one'}")
    spans = []
    for receipt in receipts.values():
        own = by_path.get(receipt["_path"])
        if own is None:
            bad.append(f"{receipt['_path']}: no write of it was seen")
            continue
        ends = [t for t in ended.get(own.holder_pid or -1, []) if own.holder_start and t > own.holder_start]
        # The log stamps milliseconds: a session that ended a whole millisecond before the commit had lost its lock.
        if ends and min(ends) + timedelta(milliseconds=1) < own.committed:
            bad.append(f"{receipt['_path']}: committed {own.committed} after its lock session {own.holder_pid} "
                       f"ended {min(ends)}")
        named = [(receipt.get(step) or {}).get("snapshot_ref") for step in ("reco", "ops_summary")]
        parts = [by_path[r] for r in named if r in by_path]
        for p in parts:
            if (p.holder_pid, p.holder_start) != (own.holder_pid, own.holder_start):
                bad.append(f"{receipt['_path']}: its report {p.path} was written under another lock session")
        spans.append((min([p.at for p in parts] + [own.at]), own.committed, receipt["_path"]))
    spans.sort()
    for (_a0, a1, pa), (b0, _b1, pb) in zip(spans, spans[1:], strict=False):
        if b0 < a1:
            bad.append(f"cycles overlap: {pb} began {b0} before {pa} committed {a1}")
    return bad
