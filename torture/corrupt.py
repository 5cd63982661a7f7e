"""Corrupt files: each damage in each log, then start-up and fsck.

Each case runs twice: with the index checkpoint the clean stop wrote (the
damage is then inside what it covered) and without one. For every case the
outcome is one of: start-up stops because the logs no longer hold what the
checkpoint covered (naming file, line and sizes), start-up recovers (a torn tail moved
aside and cut, the cut bytes kept in ``<file>.torn-<stamp>``), start-up
stops naming file and line, or start-up skips a well-formed but invalid line
with a warning. In every case fsck reports the damage, and no byte of a log
is rewritten except a torn tail that is cut (and kept).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import orjson

from opsledger.server.ledger.backend import Submit, Transition
from opsledger.server.ledger.jsonl.checkpoint import CHECKPOINT, LostLog
from opsledger.server.ledger.jsonl.fsck import fsck
from opsledger.server.ledger.jsonl.store import REQUESTS, RESULTS, CorruptLog, JsonlLedger
from opsledger.server.ledger.machine import Event


def _base(root: Path) -> None:
    s = JsonlLedger(root).open()
    ids = [s.call(Submit("ACKNOWLEDGE", {"message_id": f"m{i}"}, None, None)).request["request_id"] for i in range(6)]
    for rid in ids[:4]:
        s.call(Transition(rid, Event.CONSUME, "w", "start"))
    for rid in ids[:2]:
        s.call(Transition(rid, Event.COMPLETE_DONE, "w", "end"))
    s.close()


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def flip_byte(lines):  # a structural byte of the middle line: the key "schema" -> "scheme"
    mid = len(lines) // 2
    lines[mid] = lines[mid].replace(b'"schema"', b'"scheme"', 1)
    return lines


def truncate_middle(lines):
    mid = len(lines) // 2
    lines[mid] = lines[mid][: len(lines[mid]) // 2] + b"\n"
    return lines


def truncate_last(lines):
    lines[-1] = lines[-1][: len(lines[-1]) // 2]
    return lines


def duplicate_line(lines):
    mid = len(lines) // 2
    return lines[: mid + 1] + [lines[mid]] + lines[mid + 1:]


def other_schema(lines):
    alien = orjson.dumps({"schema": "RECO_REPORT_V1", "report_id": "x", "decision": "GENERATED"}) + b"\n"
    mid = len(lines) // 2
    return lines[:mid] + [alien] + lines[mid:]


def result_before_request(lines, results=None):
    """Results log: a result naming a ticket whose request is not (yet) in the requests log."""
    rec = orjson.loads(lines[0])
    rec["request_id"] = "99999999-9999-4999-8999-999999999999"
    rec["result_id"] = "88888888-8888-4888-8888-888888888888"
    return [orjson.dumps(rec) + b"\n"] + lines


def result_in_requests_log(lines):
    """Requests log: a TICKET_RESULT_V1 line where a request belongs (a result before any request of it)."""
    rid = orjson.loads(lines[0])["request_id"]
    result = {"schema": "TICKET_RESULT_V1", "result_id": "77777777-7777-4777-8777-777777777777", "request_id": rid,
              "processed_at": "2026-01-03T14:50:00+09:00", "status": "IN_PROGRESS", "processor_id": "x",
              "message": "m", "artifacts": []}
    return [orjson.dumps(result) + b"\n"] + lines


CASES = {
    REQUESTS: [("flipped byte", flip_byte), ("truncated line (middle)", truncate_middle),
               ("truncated last line", truncate_last), ("duplicated line", duplicate_line),
               ("line from another schema", other_schema), ("result line before its request", result_in_requests_log)],
    RESULTS: [("flipped byte", flip_byte), ("truncated line (middle)", truncate_middle),
              ("truncated last line", truncate_last), ("duplicated line", duplicate_line),
              ("line from another schema", other_schema), ("result before its request", result_before_request)],
}


def one(base: Path, rel: str, name: str, damage, workdir: Path, with_checkpoint: bool = True) -> dict:
    root = workdir
    shutil.copytree(base, root)
    if not with_checkpoint:
        (root / CHECKPOINT).unlink()
    path = root / rel
    path.write_bytes(b"".join(damage(_lines(path))))
    damaged = path.read_bytes()
    findings = [str(f) for f in fsck(root)]
    unchanged_by_fsck = path.read_bytes() == damaged
    try:
        store = JsonlLedger(root).open()
        anomalies = [f"{a.file}:{a.line_no} {a.reason}" for a in store.anomalies()]
        store.close()
        torn = list(path.parent.glob(path.name + ".torn-*"))
        if torn:
            startup = f"recovered: torn tail moved aside to {torn[0].name}"
            intact = path.read_bytes() + torn[0].read_bytes() == damaged
        elif anomalies:
            startup = "started; skipped " + "; ".join(anomalies)
            intact = path.read_bytes() == damaged
        else:
            startup = "started (damage not visible to the ledger)"
            intact = path.read_bytes() == damaged
    except CorruptLog as exc:
        startup = f"stopped: {exc.path.name}:{exc.line_no}: {exc.reason}"
        intact = path.read_bytes() == damaged
    except LostLog as exc:  # the index checkpoint covered lines that are no longer there as they were
        startup = f"stopped: {Path(exc.file).name}:{exc.line}: {exc.reason}"
        intact = path.read_bytes() == damaged
    return {
        "log": Path(rel).name, "case": name + ("" if with_checkpoint else " (no index checkpoint)"),
        "startup": startup,
        "fsck": findings[:3] or ["(nothing)"], "fsck_found": bool([f for f in findings if f.startswith("ERROR")]),
        "nothing_rewritten_silently": intact and unchanged_by_fsck,
    }


def run(work: Path, log=print) -> list[dict]:
    base = work / "base"
    _base(base)
    out = []
    n = 0
    for rel, cases in CASES.items():
        for (name, damage), with_checkpoint in ((c, w) for c in cases for w in (True, False)):
            n += 1
            res = one(base, rel, name, damage, work / f"case-{n}", with_checkpoint)
            res["passed"] = res["fsck_found"] and res["nothing_rewritten_silently"] and (
                not res["startup"].startswith("started (damage not visible"))
            log(f"corrupt {res['log']} / {res['case']}: {res['startup']}")
            out.append(res)
    return out
