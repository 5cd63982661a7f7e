"""The partition history checker finds each kind of violation it promises to."""
from __future__ import annotations

import orjson

from opsledger.server.ledger.records import REQUESTS_REF, RESULTS_REF
from torture.history import History, Op, check


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
