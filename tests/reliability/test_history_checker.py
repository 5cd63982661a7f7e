"""The partition history checker finds each kind of violation it promises to."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from opsledger.server.artifacts import layout
from opsledger.server.cycle import receipt as receipt_step
from opsledger.server.cycle.receipt import StepState
from opsledger.server.ledger.records import REQUESTS_REF, RESULTS_REF
from torture.history import History, Op, Write, check, check_cycles, lost_answers


def _export(tmp_path, requests, results):
    for rel, rows in ((REQUESTS_REF, requests), (RESULTS_REF, results)):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return tmp_path


def _req(rid, key):
    return {"request_id": rid, "request_type": "ACKNOWLEDGE", "idempotency_key": key}


def _res(rid, status, proc, n):
    return {"result_id": f"r{n}", "request_id": rid, "status": status, "processor_id": proc}


def _history(*ops):
    h = History()
    h.ops.extend(ops)
    return h


def test_a_consistent_history_passes(tmp_path):
    export = _export(tmp_path, [_req("a", "k1"), _req("b", "k2")],
                     [_res("a", "IN_PROGRESS", "p", 1), _res("a", "DONE", "p", 2)])
    h = _history(Op("submit", "k1", "c", 0, 1, "ok", "a"), Op("submit", "k2", "c", 0, 1, "unknown"),
                 Op("submit", "k2", "c", 0, 1, "ok", "b"),
                 Op("consume", "k1-c", "c", 0, 1, "ok", "a", "p"),
                 Op("complete", "k1-d", "c", 0, 1, "unknown", "a", "p", "DONE"))
    assert check(h, export, {"a": "DONE", "b": "OPEN"}) == []


def test_each_violation_is_named(tmp_path):
    export = _export(tmp_path, [_req("a", "k1"), _req("b", "k2"), _req("c", "k2")],
                     [_res("a", "IN_PROGRESS", "p", 1), _res("a", "IN_PROGRESS", "q", 2),
                      _res("b", "DONE", "p", 3), _res("b", "FAILED", "p", 4)])
    h = _history(Op("submit", "k1", "c", 0, 1, "ok", "zz"),  # answered a ticket not stored under k1
                 Op("submit", "k3", "c", 0, 1, "ok", "d"),  # ok but missing
                 Op("consume", "x", "c", 0, 1, "ok", "b", "p"),  # ok consume, no IN_PROGRESS by p
                 Op("complete", "y", "c", 0, 1, "refused", "b", "p", "DONE"))  # refused yet recorded
    found = "\n".join(check(h, export, {"a": "OPEN"}))
    for text in ("a: 2 IN_PROGRESS lines", "b: 2 terminal lines", "submit key k2: 2 tickets",
                 "submit key k1: ok as ['zz']", "submit key k3: ok as ['d'] but stored []",
                 "consume b by p ok but no IN_PROGRESS", "complete b by p refused yet recorded",
                 "board != replay"):
        assert text in found, (text, found)


def test_lost_answers_counts_unknown_commits_that_landed_and_their_converged_retries(tmp_path):
    export = _export(tmp_path, [_req("a", "k1"), _req("b", "k2")], [_res("a", "IN_PROGRESS", "p", 1)])
    lost = dict(outcome="unknown", code="INTERNAL", reason="COMMIT_OUTCOME_UNKNOWN")
    h = _history(Op("submit", "k1", "c", 0, 1, **lost), Op("submit", "k1", "c", 2, 3, "ok", "a"),  # landed, converged
                 Op("submit", "k2", "c", 0, 1, **lost),  # landed, never answered ok again
                 Op("submit", "k3", "c", 0, 1, **lost),  # did not land
                 Op("consume", "k1-c", "c", 0, 1, request_id="a", processor="p", **lost),  # landed
                 Op("submit", "k4", "c", 0, 1, "unknown", code="UNAVAILABLE"))  # not a lost COMMIT answer
    assert lost_answers(h, export) == {"lost": 4, "landed": 3, "converged": 1}


_T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _at(ms):
    return _T0 + timedelta(milliseconds=ms)


def _cycle(n, addr, pid, start_ms, end_ms):
    """A whole cycle: its reco and summary snapshots, then its receipt, written under lock session ``pid``."""
    stamp = f"20260101_0000{n:02d}"
    reco, summ = layout.snapshot_ref("reco", stamp), layout.snapshot_ref("summary", stamp)
    state = StepState(bundle_decision="PASS", reco_decision="HOLD", reco_reason="r",
                      refs={"reco_latest": layout.latest_ref("reco"), "reco_snapshot": reco,
                            "summary_latest": layout.latest_ref("summary"), "summary_snapshot": summ,
                            "preview_latest": layout.latest_ref("preview")})
    path = layout.snapshot_ref("cycle", stamp)
    receipt = receipt_step.build(f"cycle-{n}", "2026-01-01T00:00:00+09:00", state, path)
    stored = {reco: b"{}", summ: b"{}", path: orjson.dumps(receipt)}
    writes = [Write(p, addr, _at(t), _at(t + 1), pid, addr, _T0)
              for p, t in ((reco, start_ms), (summ, start_ms + 1), (path, end_ms))]
    return stored, writes, Op("cycle", f"t{n}", addr, 0, 1, "ok", f"cycle-{n}")


def _cycles(*cycles):
    stored = {layout.latest_ref(k): b"{}" for k in ("reco", "summary", "preview", "cycle")}
    stored[layout.latest_ref("bundle")] = b"{}"
    writes, calls = [], []
    for s, w, op in cycles:
        stored |= s
        writes += w
        calls.append(op)
    return calls, stored, writes


def test_the_cycle_checker_passes_serial_whole_cycles():
    calls, stored, writes = _cycles(_cycle(1, "10.0.0.2", 11, 0, 10), _cycle(2, "10.0.0.6", 12, 20, 30))
    assert check_cycles(calls, stored, writes, {11: [_at(15)], 12: [_at(40)]}) == []


def test_the_cycle_checker_finds_a_second_cycle_a_lost_lock_and_a_broken_receipt():
    calls, stored, writes = _cycles(_cycle(1, "10.0.0.2", 11, 0, 10), _cycle(2, "10.0.0.6", 12, 5, 30),
                                    _cycle(3, "10.0.0.2", 13, 40, 50))
    # cycle 2 ran beside cycle 1: it wrote while the lock was cycle 1's (10.0.0.2)
    for w in writes[3:5]:
        w.holder_pid, w.holder_addr = 11, "10.0.0.2"
    # cycle 3's lock session ended before its receipt committed
    ended = {11: [_at(60)], 12: [_at(60)], 13: [_at(45)]}
    # a receipt whose report is gone, and a call answered CYCLE_NOT_RECORDED whose receipt exists
    del stored[layout.snapshot_ref("summary", "20260101_000001")]
    calls.append(Op("cycle", "t9", "x", 0, 1, "unknown", "cycle-3", code="INTERNAL", reason="CYCLE_NOT_RECORDED"))
    calls.append(Op("cycle", "t8", "x", 0, 1, "ok", "cycle-404"))
    found = "\n".join(check_cycles(calls, stored, writes, ended))
    for text in ("written by 10.0.0.6 while the cycle lock was held by 10.0.0.2",
                 "written under another lock session", "cycles overlap",
                 "after its lock session 13 ended", "summary/snapshots/ops_summary_20260101_000001.json not stored",
                 "answered CYCLE_NOT_RECORDED yet its receipt is stored", "ok (cycle-404) but no receipt stored"):
        assert text in found, (text, found)
    stored[layout.snapshot_ref("cycle", "20260101_000003")] = b'{"schema": "LIVE_CYCLE_RECEIPT_V1"}'
    found = "\n".join(check_cycles(calls, stored, writes, ended))
    assert "integrity hash does not verify" in found and "not the seed's keys" in found
