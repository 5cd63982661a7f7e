"""Kill loop: SIGKILL a real server at random moments under load, then check.

16 client threads submit, consume and complete their own tickets and one
runs live cycles, against a server process on one root. After a random
while the server gets SIGKILL. A new server is started on the same root and:

* every acknowledged call is in the logs (submits, consumes, completes, cycles);
* no half-line survives: both logs end with a newline and every line parses;
* ``fsck`` reports no error;
* the board (every page of GetBoard) equals an independent replay of the logs;
* the latest cycle receipt verifies.
"""
from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path

import grpc
import orjson

from opsledger.client.ledger_client import OpsledgerClient
from opsledger.server.artifacts.files import FileArtifacts
from opsledger.server.cycle.publish import publish
from opsledger.server.cycle.receipt import LATEST
from opsledger.server.cycle.verify import verify_receipt
from opsledger.server.ledger.jsonl.fsck import fsck
from opsledger.server.ledger.jsonl.store import REQUESTS, RESULTS
from tests.helpers import ServerProcess

REPO = Path(__file__).resolve().parents[1]
STATUS = {1: "OPEN", 2: "IN_PROGRESS", 3: "DONE", 4: "FAILED"}


class Acked:
    """What the server acknowledged, per kind."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: set[str] = set()
        self.results: dict[str, tuple[str, str]] = {}  # result_id -> (request_id, status)
        self.cycles: list[str] = []
        self.unexpected: list[str] = []

    def count(self) -> int:
        return len(self.requests) + len(self.results) + len(self.cycles)


def _client_loop(target: str, n: int, acked: Acked, stop: threading.Event, seed: int) -> None:
    rnd = random.Random(seed)
    mine: list[tuple[str, str]] = []  # (request_id, status) of this thread's tickets
    with OpsledgerClient(target, retries=0, timeout=5) as c:
        while not stop.is_set():
            try:
                open_ = [t for t in mine if t[1] == "OPEN"]
                busy = [t for t in mine if t[1] == "IN_PROGRESS"]
                roll = rnd.random()
                if busy and roll < 0.35:
                    rid = busy[0][0]
                    status = "FAILED" if rnd.random() < 0.1 else "DONE"
                    reply = c.complete(rid, status, f"c{n}", "done")
                    with acked.lock:
                        acked.results[reply.result_id] = (rid, status)
                    mine.remove(busy[0])
                elif open_ and roll < 0.7:
                    rid = open_[0][0]
                    reply = c.consume(rid, f"c{n}")
                    with acked.lock:
                        acked.results[reply.result_id] = (rid, "IN_PROGRESS")
                    mine[mine.index(open_[0])] = (rid, "IN_PROGRESS")
                else:
                    reply = c.submit("ACKNOWLEDGE", {"message_id": f"c{n}-{rnd.random()}"})
                    with acked.lock:
                        acked.requests.add(reply.request_id)
                    mine.append((reply.request_id, "OPEN"))
            except grpc.RpcError as exc:
                if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                                  grpc.StatusCode.CANCELLED):
                    return  # the server died under us: that call was not acknowledged
                acked.unexpected.append(f"{exc.code().name}: {exc.details()}")
                return


def _cycle_loop(target: str, acked: Acked, stop: threading.Event) -> None:
    with OpsledgerClient(target, retries=0, timeout=30) as c:
        while not stop.is_set():
            try:
                receipt = c.run_cycle(timeout=30).receipt
            except grpc.RpcError:
                return
            with acked.lock:
                acked.cycles.append(receipt.snapshot_ref)


def _replay_statuses(root: Path) -> dict[str, str]:
    """An independent replay: the seed's state machine over the raw lines."""
    allowed = {("OPEN", "IN_PROGRESS"), ("IN_PROGRESS", "DONE"), ("IN_PROGRESS", "FAILED")}
    status = {}
    for line in (root / REQUESTS).read_bytes().splitlines():
        status.setdefault(orjson.loads(line)["request_id"], "OPEN")
    for line in (root / RESULTS).read_bytes().splitlines():
        rec = orjson.loads(line)
        current = status.get(rec["request_id"])
        if current is not None and (current, rec["status"]) in allowed:
            status[rec["request_id"]] = rec["status"]
    return status


def _board(target: str) -> dict[str, str]:
    out, token = {}, ""
    with OpsledgerClient(target, retries=0, timeout=30) as c:
        while True:
            page = c.board(page_size=5000, page_token=token)
            out.update({r.request_id: STATUS[r.current_status] for r in page.rows})
            token = page.next_page_token
            if not token:
                return out


def check_after_restart(root: Path, target: str, acked: Acked) -> list[str]:
    problems = []
    for rel in (REQUESTS, RESULTS):
        data = (root / rel).read_bytes()
        if data and not data.endswith(b"\n"):
            problems.append(f"{rel}: last line has no newline after restart")
        for n, line in enumerate(data.splitlines(), 1):
            try:
                orjson.loads(line)
            except orjson.JSONDecodeError:
                problems.append(f"{rel}:{n}: half-line survived")
    logged_requests = {orjson.loads(x)["request_id"] for x in (root / REQUESTS).read_bytes().splitlines()}
    logged_results = {}
    for x in (root / RESULTS).read_bytes().splitlines():
        rec = orjson.loads(x)
        logged_results[rec["result_id"]] = (rec["request_id"], rec["status"])
    lost = [r for r in acked.requests if r not in logged_requests]
    lost += [r for r, v in acked.results.items() if logged_results.get(r) != v]
    lost += [s for s in acked.cycles if not (root / s).is_file()]
    problems += [f"acknowledged but lost: {x}" for x in lost]
    problems += [f"fsck: {f}" for f in fsck(root) if f.severity == "error"]
    if _board(target) != _replay_statuses(root):
        problems.append("board differs from a replay of the logs")
    if (root / LATEST).exists():
        problems += [f"latest receipt: {p}" for p in verify_receipt(FileArtifacts(root), root / LATEST)]
    return problems


def run(root: Path, rounds: int, clients: int = 16, seed: int = 1, log=print) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    publish(FileArtifacts(root), REPO / "examples" / "strategy_example.json")
    rnd = random.Random(seed)
    totals = {"rounds": 0, "acknowledged": 0, "lost": 0, "problems": [], "unexpected": []}
    server = ServerProcess(root, http=False, log_level="WARNING")
    for r in range(rounds):
        acked = Acked()
        stop = threading.Event()
        threads = [threading.Thread(target=_client_loop, args=(server.target, i, acked, stop, seed * 1000 + r * 100 + i))
                   for i in range(clients)]
        threads.append(threading.Thread(target=_cycle_loop, args=(server.target, acked, stop)))
        for t in threads:
            t.start()
        time.sleep(rnd.uniform(0.3, 1.5))
        server.kill()  # SIGKILL, at a random moment
        stop.set()
        for t in threads:
            t.join(30)
        server = ServerProcess(root, http=False, log_level="WARNING")  # start-up recovery happens here
        problems = check_after_restart(root, server.target, acked)
        lost = sum(1 for p in problems if p.startswith("acknowledged but lost"))
        totals["rounds"] += 1
        totals["acknowledged"] += acked.count()
        totals["lost"] += lost
        totals["problems"] += [f"round {r}: {p}" for p in problems]
        totals["unexpected"] += acked.unexpected
        log(f"kill round {r + 1}/{rounds}: {acked.count()} acknowledged calls checked, "
            f"{lost} lost, {len(problems)} problem(s)")
    server.terminate()
    totals["torn_files"] = len(list((root / REQUESTS).parent.glob("*.torn-*")))
    totals["lines"] = {rel: len((root / rel).read_bytes().splitlines()) for rel in (REQUESTS, RESULTS)}
    return totals


if __name__ == "__main__":
    import sys
    import tempfile

    print(json.dumps(run(Path(tempfile.mkdtemp()) / "root", int(sys.argv[1]) if len(sys.argv) > 1 else 3),
                     indent=2, default=str))
