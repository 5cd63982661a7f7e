"""Soak: steady mixed load on a real server process; RSS, fds and p99 over time."""
from __future__ import annotations

import random
import statistics
import threading
import time
from pathlib import Path

import grpc

from opsledger.client.ledger_client import OpsledgerClient
from tests.helpers import ServerProcess


def _rss_and_fds(pid: int) -> tuple[int, int]:
    rss = 0
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    fds = len(list(Path(f"/proc/{pid}/fd").iterdir()))
    return rss, fds


def _tickets(target: str) -> int:
    with OpsledgerClient(target, retries=0) as c:
        return c.board(page_size=1).total_count


def run(root: Path, seconds: float, clients: int = 8, rate_per_client: float = 40.0, log=print) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    srv = ServerProcess(root, http=False, log_level="WARNING")
    stop = threading.Event()
    lock = threading.Lock()
    windows: dict[int, list[float]] = {}
    errors: list[str] = []
    ops = [0]
    started = time.monotonic()
    window_s = max(1.0, seconds / 10)

    def client(n: int) -> None:
        rnd = random.Random(n)
        held: list[str] = []
        opened: list[str] = []
        interval = 1.0 / rate_per_client
        next_at = time.monotonic()
        with OpsledgerClient(srv.target, retries=0, timeout=10) as c:
            while not stop.is_set():
                next_at += interval
                t = time.perf_counter()
                try:
                    roll = rnd.random()
                    if held and roll < 0.3:
                        c.complete(held.pop(0), "DONE", f"soak{n}", "ok")
                    elif opened and roll < 0.6:
                        rid = opened.pop(0)
                        c.consume(rid, f"soak{n}")
                        held.append(rid)
                    elif roll < 0.9:
                        opened.append(c.submit("ACKNOWLEDGE", {"message_id": f"s{n}"}).request_id)
                    else:
                        c.board(page_size=50)
                except grpc.RpcError as exc:
                    with lock:
                        errors.append(f"{exc.code().name}: {exc.details()}")
                elapsed = time.perf_counter() - t
                with lock:
                    windows.setdefault(int((time.monotonic() - started) // window_s), []).append(elapsed)
                    ops[0] += 1
                delay = next_at - time.monotonic()
                if delay > 0:
                    stop.wait(delay)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(min(2.0, seconds / 5))  # warm-up before the first reading
    rss0, fds0 = _rss_and_fds(srv.proc.pid)
    tickets0 = _tickets(srv.target)
    samples = [(rss0, fds0)]
    while time.monotonic() - started < seconds:
        time.sleep(min(5.0, window_s))
        samples.append(_rss_and_fds(srv.proc.pid))
    rss1, fds1 = _rss_and_fds(srv.proc.pid)
    tickets1 = _tickets(srv.target)
    stop.set()
    for t in threads:
        t.join(30)
    srv.terminate()
    p99 = []
    for k in sorted(windows):
        xs = sorted(windows[k])
        if len(xs) >= 20:
            p99.append(round(xs[int(len(xs) * 0.99)] * 1000, 2))
    result = {
        "seconds": round(time.monotonic() - started, 1), "ops": ops[0], "errors": len(errors),
        "error_samples": errors[:5], "rss_start_mib": round(rss0 / 2**20, 1), "rss_end_mib": round(rss1 / 2**20, 1),
        "rss_max_mib": round(max(s[0] for s in samples) / 2**20, 1), "fds_start": fds0, "fds_end": fds1,
        "tickets_start": tickets0, "tickets_end": tickets1,
        "rss_growth_per_ticket_b": round((rss1 - rss0) / max(1, tickets1 - tickets0)),
        "p99_ms_by_window": p99, "p99_ms_median": statistics.median(p99) if p99 else None,
    }
    log(f"soak: {result}")
    return result
