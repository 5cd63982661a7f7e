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
from pathlib import Path

import grpc
import orjson

from opsledger.server.ledger.records import REQUESTS_REF, RESULTS_REF

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
