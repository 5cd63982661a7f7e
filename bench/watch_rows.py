"""P11/P12: WatchTickets — event latency with 1 and 100 watchers, and P1's throughput with 100 watchers attached."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.gen import generate
from tests.helpers import ServerProcess

REPO = Path(__file__).resolve().parents[1]


def _watchers(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bench.watchers", *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, **kw)


def p11(work: Path, size: dict, fresh_root, median) -> dict:
    """Submit -> SUBMITTED event received, per (ticket, watcher), watchers in another process."""
    out = {}
    for n in (1, 100):
        p50, p99 = [], []
        for r in range(size["rounds"]):
            root = fresh_root(work, f"p11-{n}-{r}")
            srv = ServerProcess(root, http=False, log_level="WARNING")
            try:
                proc = _watchers("latency", srv.target, "--watchers", str(n), "--count", str(size["p11_tickets"]))
                res = json.loads(proc.communicate(timeout=600)[0].splitlines()[-1])
            finally:
                srv.terminate()
            assert res["deliveries"] == n * size["p11_tickets"], res
            p50.append(res["p50_ms"])
            p99.append(res["p99_ms"])
        out[n] = {"p50_ms": median(p50), "p99_ms": median(p99)}
    return out


def _cpu_s(pid: int) -> float:
    """CPU seconds process ``pid`` has used (user + system, from /proc)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def p12(work: Path, size: dict, fresh_root, median, client) -> dict:
    """P1's pairs/s (c=32) with 100 watchers attached (another process) vs none, same data;
    and where the machine's CPU went: the server's per pair, the watchers' process's."""
    conc, n = 32, size["p1_pairs"][32]
    rates, base, delivered = [], [], []
    server_cpu: dict[bool, list[float]] = {False: [], True: []}
    watchers_cpu = []
    for r in range(size["rounds"]):
        for watched in (False, True):
            root = fresh_root(work, f"p12-{watched}-{r}")
            ids = generate(root, n, open_=n)["ids"]
            srv = ServerProcess(root, http=False, log_level="WARNING")
            try:
                proc = None
                if watched:
                    proc = _watchers("hold", srv.target, "--watchers", "100", stdin=subprocess.PIPE)
                    assert proc.stdout.readline().strip() == "ready"
                cpu_before = _cpu_s(srv.proc.pid)
                pairs = client("pairs", srv.target, conc, ids)
                if proc is not None:
                    # The watchers may still be draining what the pairs wrote: give them the time to.
                    held = json.loads(proc.communicate("", timeout=600)[0].splitlines()[-1])
                    delivered.append(held["per_watcher_min"] / (2 * n))
                    watchers_cpu.append(held["cpu_s"])
                server_cpu[watched].append((_cpu_s(srv.proc.pid) - cpu_before) / n * 1000)
            finally:
                srv.terminate()
            (rates if watched else base).append(pairs["rate"])
    return {"rate": median(rates), "base": median(base), "delivered": min(delivered),
            "server_ms_per_pair": median(server_cpu[True]), "base_server_ms_per_pair": median(server_cpu[False]),
            "watchers_cpu_s": median(watchers_cpu)}


def _rss_and_fds(pid: int) -> tuple[int, int]:
    rss = next(int(x.split()[1]) * 1024 for x in open(f"/proc/{pid}/status") if x.startswith("VmRSS:"))
    return rss, len(__import__("os").listdir(f"/proc/{pid}/fd"))


def idle_watchers(work: Path, size: dict, fresh_root, median) -> dict:
    """Server RSS and open fds with N idle watchers (over N/10 connections) vs none."""
    import time

    n = size["idle_watchers"]
    root = fresh_root(work, "idle")
    srv = ServerProcess(root, http=False, log_level="WARNING")
    try:
        time.sleep(1)
        before = _rss_and_fds(srv.proc.pid)
        proc = _watchers("hold", srv.target, "--watchers", str(n), "--channels", str(max(1, n // 10)),
                         stdin=subprocess.PIPE)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(2)
        during = _rss_and_fds(srv.proc.pid)
        proc.communicate("", timeout=120)
        time.sleep(1)
        after = _rss_and_fds(srv.proc.pid)
    finally:
        srv.terminate()
    return {"n": n, "channels": max(1, n // 10), "rss_before": before[0], "rss_during": during[0],
            "rss_after": after[0], "fds_before": before[1], "fds_during": during[1], "fds_after": after[1]}
