"""I/O faults injected at the store's I/O boundary (``JsonlLedger.write``/``sync``).

Each case: a real server (in-process, port 0) takes some calls, then its
disk "fails" with EIO or ENOSPC on write or on fsync (or writes half a batch
and then fails). Expected: the failing call answers UNAVAILABLE, later writes
too (read-only until restart), health turns NOT_SERVING, reads still work;
after a restart nothing half-written is visible, every acknowledged call is
there and fsck is clean. Then the live cycle: a report folder that cannot be
written still gives a receipt (RECO_FAIL); a receipt folder that cannot be
written gives UNAVAILABLE and a line on stderr saying why.
"""
from __future__ import annotations

import contextlib
import errno
import io
import os
from pathlib import Path

import grpc
import orjson
from grpc_health.v1 import health_pb2

from opsledger.client.ledger_client import OpsledgerClient
from opsledger.server.artifacts.files import FileArtifacts
from opsledger.server.cycle.publish import publish
from opsledger.server.cycle.receipt import LATEST
from opsledger.server.cycle.verify import verify_receipt
from opsledger.server.ledger.jsonl.fsck import fsck
from opsledger.server.ledger.jsonl.store import REQUESTS, RESULTS, JsonlLedger
from tests.helpers import ServerThread, grpc_health

REPO = Path(__file__).resolve().parents[1]


def _fail(err: int):
    def broken(*_args):
        raise OSError(err, os.strerror(err))

    return broken


def _half_then_fail(err: int):
    def half(fd: int, data: bytes) -> None:
        os.write(fd, data[: max(1, len(data) // 2)])
        raise OSError(err, os.strerror(err))

    return half


CASES = [
    ("write EIO", "write", lambda: _fail(errno.EIO)),
    ("write ENOSPC", "write", lambda: _fail(errno.ENOSPC)),
    ("half a batch written, then ENOSPC", "write", lambda: _half_then_fail(errno.ENOSPC)),
    ("fsync EIO", "sync", lambda: _fail(errno.EIO)),
    ("fsync ENOSPC", "sync", lambda: _fail(errno.ENOSPC)),
]


def _health(target: str) -> str:
    return health_pb2.HealthCheckResponse.ServingStatus.Name(grpc_health(target))


def ledger_case(root: Path, name: str, attr: str, make) -> dict:
    srv = ServerThread(root).start()
    acked = []
    outcome = {"case": name}
    try:
        with OpsledgerClient(srv.target, retries=0) as c:
            for i in range(5):
                rid = c.submit("ACKNOWLEDGE", {"message_id": f"m{i}"}).request_id
                acked.append(rid)
            c.consume(acked[0], "w")
            setattr(srv.app.store, attr, make())
            try:
                c.consume(acked[1], "w")
                outcome["failing_call"] = "OK (fault not hit)"
            except grpc.RpcError as exc:
                outcome["failing_call"] = exc.code().name
            try:
                c.submit("ACKNOWLEDGE", {"message_id": "after"})
                outcome["next_write"] = "OK"
            except grpc.RpcError as exc:
                outcome["next_write"] = exc.code().name
            for _ in range(50):
                outcome["health"] = _health(srv.target)
                if outcome["health"] == "NOT_SERVING":
                    break
            outcome["reads"] = "OK" if c.board().total_count == 5 else "WRONG"
    finally:
        srv.stop(1)
    store = JsonlLedger(root).open()  # the restart
    try:
        ok = all(store.ticket(rid) is not None for rid in acked)
        ok = (ok and store.ticket(acked[0]).row["current_status"] == "IN_PROGRESS"
              and store.ticket(acked[1]).row["current_status"] == "OPEN")
    finally:
        store.close()
    lines_parse = all(
        orjson.loads(line) is not None
        for rel in (REQUESTS, RESULTS) for line in (root / rel).read_bytes().splitlines()
    )
    outcome["after_restart"] = ("acknowledged intact, failed call absent" if ok else "MISMATCH") + (
        "" if lines_parse else ", HALF LINE VISIBLE")
    outcome["fsck_errors"] = sum(1 for f in fsck(root) if f.severity == "error")
    outcome["passed"] = (outcome["failing_call"] == "UNAVAILABLE" and outcome["next_write"] == "UNAVAILABLE"
                         and outcome["health"] == "NOT_SERVING" and outcome["reads"] == "OK" and ok
                         and lines_parse and outcome["fsck_errors"] == 0)
    return outcome


def _block(root: Path, rel: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        os.rename(path, path.with_name(path.name + ".moved"))
    path.write_text("a file where a folder should be")


def cycle_cases(base: Path) -> list[dict]:
    out = []
    root = base / "cycle-reco"
    root.mkdir(parents=True)
    publish(FileArtifacts(root), REPO / "examples" / "strategy_example.json")
    _block(root, "reports/live/reco/snapshots")
    srv = ServerThread(root).start()
    try:
        with OpsledgerClient(srv.target, retries=0) as c:
            r = c.run_cycle().receipt
        from opsledger.v1 import cycle_pb2

        reason = cycle_pb2.CycleReason.Value.Name(r.reason)
        verified = verify_receipt(FileArtifacts(root), root / LATEST) == []
        out.append({"case": "reco report folder unwritable", "answer": f"receipt, reason {reason}",
                    "receipt_verifies": verified, "passed": reason == "RECO_FAIL" and verified})
    finally:
        srv.stop(1)
    root = base / "cycle-receipt"
    root.mkdir(parents=True)
    publish(FileArtifacts(root), REPO / "examples" / "strategy_example.json")
    _block(root, "reports/live/cycle/snapshots")
    srv = ServerThread(root).start()
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), OpsledgerClient(srv.target, retries=0) as c:
            try:
                c.run_cycle()
                answer = "OK"
            except grpc.RpcError as exc:
                answer = exc.code().name
    finally:
        srv.stop(1)
    said = "receipt could not be written" in err.getvalue()
    out.append({"case": "receipt folder unwritable", "answer": answer, "stderr_says_why": said,
                "passed": answer == "INTERNAL" and said})
    return out


def run(base: Path, log=print) -> list[dict]:
    results = []
    for i, (name, attr, make) in enumerate(CASES):
        root = base / f"ledger-{i}"
        root.mkdir(parents=True)
        res = ledger_case(root, name, attr, make)
        log(f"fault {name}: {res}")
        results.append(res)
    for res in cycle_cases(base):
        log(f"fault {res['case']}: {res}")
        results.append(res)
    return results
