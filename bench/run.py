"""opsledger benchmarks: every row against a baseline measured in the same run.

``python -m bench.run`` (make bench) prints one table and writes
docs/BENCHMARKS.md; ``--quick`` (make bench-quick) uses small sizes and one
round; ``--smoke`` runs every code path on tiny sizes (the test suite does).
Figures are medians of the rounds; the machine is shared and noisy, so the
ratio to the baseline is the figure that matters.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.gen import generate
from bench.sqlite_ledger import SqliteLedger
from opsledger.server.ledger.jsonl.checkpoint import CHECKPOINT
from tests.helpers import OtlpReceiver, ServerProcess

REPO = Path(__file__).resolve().parents[1]

SIZES = {
    "full": dict(rounds=3, p1_pairs={1: 1500, 8: 4000, 32: 4000}, p2_per_thread={1: 400, 32: 40},
                 p3_tickets=1_000_000, p3_in_progress=1000, p3_tail_calls=100_000, p4_iters=300, p5_tickets=100_000, p5_runs=15,
                 p6_tickets=4000, p13_tickets=10_000, p13_walks=10,
                 p11_tickets=200, idle_watchers=1000),
    "quick": dict(rounds=1, p1_pairs={1: 300, 8: 800, 32: 800}, p2_per_thread={1: 150, 32: 10},
                  p3_tickets=50_000, p3_in_progress=100, p3_tail_calls=5_000, p4_iters=100, p5_tickets=10_000, p5_runs=5,
                  p6_tickets=800, p13_tickets=10_000, p13_walks=3,
                  p11_tickets=50, idle_watchers=1000),
    "smoke": dict(rounds=1, p1_pairs={1: 10, 8: 16, 32: 32}, p2_per_thread={1: 5, 32: 1},
                  p3_tickets=300, p3_in_progress=10, p3_tail_calls=30, p4_iters=5, p5_tickets=200, p5_runs=2,
                  p6_tickets=64, p13_tickets=2500, p13_walks=1,
                  p11_tickets=5, idle_watchers=20),
}


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def client(kind: str, target: str, concurrency: int, ids: list[str] | None = None, count: int = 0) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(ids or [], f)
    try:
        out = subprocess.run([sys.executable, "-m", "bench.clients", kind, target, "--concurrency", str(concurrency),
                              "--ids-file", f.name, "--count", str(count)],
                             cwd=REPO, capture_output=True, text=True, timeout=600, check=True)
    finally:
        os.unlink(f.name)
    return json.loads(out.stdout)


def fresh_root(work: Path, name: str) -> Path:
    root = work / name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    return root


# -- P1 ---------------------------------------------------------------------------------
def p1(work: Path, size: dict, concurrencies=None, env: dict | None = None) -> dict:
    out = {}
    for conc, n in size["p1_pairs"].items():
        if concurrencies is not None and conc not in concurrencies:
            continue
        rates, base, p50, p99 = [], [], [], []
        for r in range(size["rounds"]):
            root = fresh_root(work, f"p1-{conc}-{r}")
            ids = generate(root, n, open_=n)["ids"]
            srv = ServerProcess(root, http=False, log_level="WARNING", env=env)
            try:
                noop = client("noop", srv.target, conc, count=n)
                pairs = client("pairs", srv.target, conc, ids)
            finally:
                srv.terminate()
            rates.append(pairs["rate"])
            base.append(noop["rate"])
            p50.append(pairs["p50_ms"])
            p99.append(pairs["p99_ms"])
        out[conc] = {"rate": median(rates), "base": median(base), "p50_ms": median(p50), "p99_ms": median(p99)}
    return out


TRACED_CONCURRENCY = 8


def p1_traced(work: Path, size: dict) -> dict:
    """P1 with tracing on: every span exported by OTLP/gRPC to a receiver in this process."""
    receiver = OtlpReceiver()
    try:
        out = p1(work, size, concurrencies=(TRACED_CONCURRENCY,), env=receiver.env)
    finally:
        receiver.stop()
    out[TRACED_CONCURRENCY]["spans"] = len(receiver.spans)
    return out


# -- P2 ---------------------------------------------------------------------------------
def _threads(conc: int, fn) -> float:
    barrier = threading.Barrier(conc + 1)
    errors = []

    def body(i):
        barrier.wait()
        try:
            fn(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    ts = [threading.Thread(target=body, args=(i,)) for i in range(conc)]
    for t in ts:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


def p2(work: Path, size: dict) -> dict:
    from opsledger.server.ledger.backend import Submit, Transition
    from opsledger.server.ledger.jsonl.store import JsonlLedger
    from opsledger.server.ledger.machine import Event

    payload = {"message_id": "m"}
    out = {}
    for conc, per in size["p2_per_thread"].items():
        ours, theirs = [], []
        for r in range(size["rounds"]):
            store = JsonlLedger(fresh_root(work, f"p2-store-{conc}-{r}")).open()

            def ledger_ops(_i, store=store, per=per):
                for _ in range(per):
                    rid = store.call(Submit("ACKNOWLEDGE", payload, None, None)).request["request_id"]
                    store.call(Transition(rid, Event.CONSUME, "bench", "start"))
                    store.call(Transition(rid, Event.COMPLETE_DONE, "bench", "done"))

            try:
                ours.append(3 * per * conc / _threads(conc, ledger_ops))
            finally:
                store.close()
            sql = SqliteLedger(fresh_root(work, f"p2-sqlite-{conc}-{r}") / "ledger.sqlite3")

            def sqlite_ops(_i, sql=sql, per=per):
                for _ in range(per):
                    rid = sql.submit("ACKNOWLEDGE", payload)
                    sql.transition(rid, Event.CONSUME, "bench", "start")
                    sql.transition(rid, Event.COMPLETE_DONE, "bench", "done")

            theirs.append(3 * per * conc / _threads(conc, sqlite_ops))
        out[conc] = {"rate": median(ours), "base": median(theirs)}
    return out


# -- P3 / P4 ------------------------------------------------------------------------------
REPLAY = """
import resource, sys, time
from pathlib import Path
root, mode = Path(sys.argv[1]), sys.argv[2]
t = time.perf_counter()
if mode == "parse":
    import orjson
    for name in ("state/tickets/ticket_requests.jsonl", "state/tickets/ticket_results.jsonl"):
        with open(root / name, "rb") as f:
            for line in f:
                orjson.loads(line)
else:
    from opsledger.server.ledger.jsonl.store import JsonlLedger
    store = JsonlLedger(root).open()
seconds = time.perf_counter() - t
print(seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def _replay(root: Path, mode: str) -> tuple[float, int]:
    out = subprocess.run([sys.executable, "-c", REPLAY, str(root), mode], cwd=REPO, capture_output=True,
                         text=True, timeout=900, check=True)
    seconds, rss = out.stdout.split()
    return float(seconds), int(rss)


def p3(root: Path, size: dict, counts: dict) -> dict:
    ours, base, rss, base_rss = [], [], [], []
    for _ in range(size["rounds"]):
        (root / CHECKPOINT).unlink(missing_ok=True)  # a cold replay: no index checkpoint
        s, m = _replay(root, "parse")
        base.append(s)
        base_rss.append(m)
        s, m = _replay(root, "store")
        ours.append(s)
        rss.append(m)
    # the parse-only process is the floor: interpreter + orjson, nothing kept
    per_million = (median(rss) - median(base_rss)) / counts["tickets"] * 1_000_000
    return {"seconds": median(ours), "base": median(base), "rss": median(rss), "rss_per_million": per_million,
            "tickets": counts["tickets"], "results": counts["results"]}


def _serve_once(root: Path, kill: bool) -> tuple[float, int]:
    """Seconds from starting `opsledger serve` to health SERVING, and its RSS then."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    ready = root / ".bench-ready.json"
    ready.unlink(missing_ok=True)
    env = dict(os.environ, OPSLEDGER_LOG_LEVEL="WARNING")
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "opsledger.server.cli", "serve", "--root", str(root), "--grpc-addr",
                             "127.0.0.1:0", "--no-http", "--checkpoint-interval", "0", "--ready-file", str(ready)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not ready.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            time.sleep(0.005)
        port = json.loads(ready.read_text())["grpc_port"]
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            status = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=30).status
        seconds = time.perf_counter() - t
        assert status == health_pb2.HealthCheckResponse.SERVING
        rss = next(int(x.split()[1]) * 1024 for x in open(f"/proc/{proc.pid}/status") if x.startswith("VmRSS"))
    finally:
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        proc.wait(120)
    return seconds, rss


def _calls_since_checkpoint(root: Path, calls: int) -> None:
    """``calls`` transitions appended after the last checkpoint (submit, consume, complete)."""
    from opsledger.server.ledger.backend import Submit, Transition
    from opsledger.server.ledger.jsonl.store import JsonlLedger
    from opsledger.server.ledger.machine import Event

    store = JsonlLedger(root, fsync=False, scrub=False).open()
    try:
        n = 0
        while n < calls:
            rid = store.call(Submit("ACKNOWLEDGE", {"message_id": f"tail-{n}"}, None, None)).request["request_id"]
            store.call(Transition(rid, Event.CONSUME, "bench", "start"))
            store.call(Transition(rid, Event.COMPLETE_DONE, "bench", "done"))
            n += 3
    finally:
        store.close(checkpoint=False)  # as a SIGKILL leaves it: no checkpoint at stop


def p3_restart(work: Path, root: Path, size: dict, counts: dict, parse_s: float) -> dict:
    """P3a (clean restart, checkpoint + empty tail), P3b (after SIGKILL, a tail of calls),
    P3d (RSS of the serving process per million tickets held, over a server on an empty root)."""
    empty = fresh_root(work, "p3-empty")
    subprocess.run([sys.executable, "-m", "opsledger.server.cli", "checkpoint", "--root", str(root)], cwd=REPO, check=True,
                   capture_output=True, timeout=900)
    clean, rss, rss0 = [], [], []
    for _ in range(size["rounds"]):
        s, m = _serve_once(root, kill=False)
        clean.append(s)
        rss.append(m)
        rss0.append(_serve_once(empty, kill=False)[1])
    _calls_since_checkpoint(root, size["p3_tail_calls"])
    killed = [_serve_once(root, kill=True)[0] for _ in range(size["rounds"])]
    per_million = (median(rss) - median(rss0)) / counts["tickets"] * 1_000_000
    return {"clean_s": median(clean), "killed_s": median(killed), "base": parse_s, "tail": size["p3_tail_calls"],
            "rss": median(rss), "rss_per_million": per_million, "tickets": counts["tickets"]}


class _Context:
    """Just enough of a grpc.aio ServicerContext for an in-process call."""

    def time_remaining(self):
        return None


def p4(root: Path, size: dict) -> dict:
    from opsledger.server.artifacts.files import FileArtifacts
    from opsledger.server.common.clock import Clock
    from opsledger.server.ledger.jsonl.store import JsonlLedger
    from opsledger.server.ledger.service import TicketService
    from opsledger.v1 import tickets_pb2 as pb

    store = JsonlLedger(root).open()

    async def measure():
        service = TicketService(store, Clock(), FileArtifacts(root))
        ctx = _Context()
        filtered = pb.GetBoardRequest(page_size=100, status=[pb.TicketStatus.IN_PROGRESS])
        unfiltered = pb.GetBoardRequest(page_size=100)
        times = {"filtered": [], "unfiltered": []}
        for _ in range(size["p4_iters"]):
            for name, req in (("filtered", filtered), ("unfiltered", unfiltered)):
                t = time.perf_counter()
                reply = await service.GetBoard(req, ctx)
                times[name].append(time.perf_counter() - t)
                assert reply.row_count == min(100, reply.total_count)
        return times

    try:
        times = asyncio.run(measure())
        in_progress = store.counts()["IN_PROGRESS"]
    finally:
        store.close()
    return {"filtered_ms": median(times["filtered"]) * 1000, "base_ms": median(times["unfiltered"]) * 1000,
            "in_progress": in_progress}


# -- P5 ---------------------------------------------------------------------------------
def p5(work: Path, size: dict) -> dict:
    from opsledger.server.artifacts.files import FileArtifacts
    from opsledger.server.common.canonical import pretty
    from opsledger.server.common.clock import Clock, iso
    from opsledger.server.cycle.bundle import LATEST_REF, make_bundle
    from opsledger.server.cycle.runner import CycleRunner
    from opsledger.server.cycle.service import ledger_view
    from opsledger.server.ledger.jsonl.store import JsonlLedger

    root = fresh_root(work, "p5")
    generate(root, size["p5_tickets"], in_progress=size["p5_tickets"] // 100, open_=size["p5_tickets"] // 100)
    strategy = {
        "name": "bench_100", "version": "1", "universe": [{"ticker": f"{i:06d}", "name": f"ETF {i}"} for i in range(100)],
        "rebalance_rule": {"frequency": "DAILY", "time_kst": "15:10"},
        "risk_limits": {"max_position_pct": 0.1, "max_drawdown_pct": 0.2},
        "position_limits": {"max_positions": 20, "min_cash_pct": 0.05},
        "decision_params": {"scores": {f"{i:06d}": (i % 17) / 10 for i in range(100)}},
    }
    bundle = make_bundle(strategy, iso(Clock().now()), "bench", None, {"pc_host": "bench"}, [])
    (root / LATEST_REF).parent.mkdir(parents=True, exist_ok=True)
    (root / LATEST_REF).write_bytes(pretty(bundle))
    store = JsonlLedger(root).open()
    try:
        view = ledger_view(store)
        runner = CycleRunner(FileArtifacts(root), view, console=lambda _t: None)
        runs, base = [], []
        for _ in range(size["p5_runs"]):
            t = time.perf_counter()
            receipt = runner.run()
            runs.append(time.perf_counter() - t)
            assert receipt["result"] == "OK", receipt
            t = time.perf_counter()
            json.loads((root / LATEST_REF).read_bytes())
            view(Clock().now())
            base.append(time.perf_counter() - t)
    finally:
        store.close()
    return {"ms": median(runs) * 1000, "base_ms": median(base) * 1000}


# -- P6 ---------------------------------------------------------------------------------
def p6(work: Path, size: dict) -> dict:
    http, grpc_ = [], []
    n = size["p6_tickets"]
    for r in range(size["rounds"]):
        root = fresh_root(work, f"p6-{r}")
        ids = generate(root, n, open_=n)["ids"]
        srv = ServerProcess(root, log_level="WARNING")
        try:
            halves = (ids[: n // 2], ids[n // 2:])
            order = [("http", srv.http_base), ("consume", srv.target)]
            if r % 2:
                order.reverse()
            for i, (kind, target) in enumerate(order):
                res = client(kind, target, 32, halves[i])
                (http if kind == "http" else grpc_).append(res["rate"])
        finally:
            srv.terminate()
    return {"rate": median(http), "base": median(grpc_)}


# -- P13 --------------------------------------------------------------------------------
def p13(work: Path, size: dict) -> dict:
    """The whole board walked in pages of 1,000 over HTTP, and the same over gRPC."""
    n = size["p13_tickets"]
    root = fresh_root(work, "p13")
    generate(root, n, in_progress=n)  # every ticket consumed once: n tickets, n results
    srv = ServerProcess(root, log_level="WARNING")
    http, grpc_ = [], []
    try:
        for r in range(size["rounds"]):
            order = [("board-http", srv.http_base, http), ("board-grpc", srv.target, grpc_)]
            if r % 2:
                order.reverse()
            for kind, target, out in order:
                res = client(kind, target, 1, count=size["p13_walks"])
                assert res["rows"] == n, res
                out.append(res)
    finally:
        srv.terminate()
    return {"tickets": n, "walk_ms": median([x["p50_ms"] for x in http]),
            "base_walk_ms": median([x["p50_ms"] for x in grpc_]),
            "page_ms": median([x["page_p50_ms"] for x in http]),
            "base_page_ms": median([x["page_p50_ms"] for x in grpc_])}


# -- report -----------------------------------------------------------------------------
def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = next(int(x.split()[1]) for x in open("/proc/meminfo") if x.startswith("MemTotal")) // 1024 // 1024
    except (OSError, StopIteration):
        mem = 0
    return f"{os.cpu_count()} cores ({cpu}), {mem} GiB RAM, Linux {platform.release()}, Python {platform.python_version()}"


def rows(res: dict) -> list[list[str]]:
    def ratio(a, b):
        return a / b if b else float("nan")

    def verdict(ok):
        return "met" if ok else "MISSED"

    out = []
    for conc, v in res.get("P1", {}).items():
        rr = ratio(v["rate"], v["base"])
        out.append([f"P1 c={conc}", f"{v['rate']:.0f} pairs/s (p50 {v['p50_ms']:.2f} ms, p99 {v['p99_ms']:.2f} ms)",
                    f"{v['base']:.0f} no-op pairs/s", f"{rr:.2f}",
                    "≥ 0.7" if conc == 32 else "—", verdict(rr >= 0.7) if conc == 32 else "—"])
    for conc, v in res.get("P1 traced", {}).items():
        off = res["P1"][conc]
        out.append([f"P1 c={conc}, tracing on (OTLP export)",
                    f"{v['rate']:.0f} pairs/s (p50 {v['p50_ms']:.2f} ms, p99 {v['p99_ms']:.2f} ms; {v['spans']:,} spans)",
                    f"{off['rate']:.0f} pairs/s tracing off (P1 c={conc})", f"{ratio(v['rate'], off['rate']):.2f}",
                    "—", "—"])
    for conc, v in res.get("P2", {}).items():
        rr = ratio(v["rate"], v["base"])
        need = 1.0 if conc == 1 else 3.0
        out.append([f"P2 c={conc}", f"{v['rate']:.0f} transitions/s", f"{v['base']:.0f} transitions/s (SQLite)",
                    f"{rr:.2f}", f"≥ {need:g}×", verdict(rr >= need)])
    if "P3" in res:
        v = res["P3"]
        rr = ratio(v["seconds"], v["base"])
        out.append([f"P3c cold replay, no checkpoint: {v['tickets']:,} tickets / {v['results']:,} results",
                    f"{v['seconds']:.2f} s, peak RSS {v['rss'] / 2**20:.0f} MiB "
                    f"({v['rss_per_million'] / 2**20:.0f} MiB per 1M tickets held)",
                    f"{v['base']:.2f} s parse-only", f"{rr:.2f}", "≤ 3×, ≤ 1.5 GB",
                    verdict(rr <= 3 and v["rss"] <= 1.5e9)])
    if "P3r" in res:
        v = res["P3r"]
        rr = ratio(v["clean_s"], v["base"])
        out.append(["P3a restart after a clean stop (checkpoint + empty tail) to health SERVING",
                    f"{v['clean_s']:.2f} s", f"{v['base']:.2f} s parse-only", f"{rr:.2f}", "≤ 1.0 s, ≤ 0.5×",
                    verdict(v["clean_s"] <= 1.0 and rr <= 0.5)])
        rr = ratio(v["killed_s"], v["base"])
        out.append([f"P3b restart after SIGKILL, {v['tail']:,} calls since the checkpoint, to SERVING",
                    f"{v['killed_s']:.2f} s", f"{v['base']:.2f} s parse-only", f"{rr:.2f}", "≤ 0.7×",
                    verdict(rr <= 0.7)])
        out.append(["P3d RSS per million tickets held (serving process after a checkpoint start)",
                    f"{v['rss_per_million'] / 2**20:.0f} MiB (RSS {v['rss'] / 2**20:.0f} MiB)",
                    "same server on an empty root", "—", "≤ 250 MiB",
                    verdict(v["rss_per_million"] <= 250 * 2**20)])
    if "P4" in res:
        v = res["P4"]
        rr = ratio(v["filtered_ms"], v["base_ms"])
        out.append([f"P4 page of 100, IN_PROGRESS ({v['in_progress']:,} of them)", f"{v['filtered_ms']:.2f} ms p50",
                    f"{v['base_ms']:.2f} ms unfiltered", f"{rr:.2f}", "≤ 5 ms, ≤ 2",
                    verdict(v["filtered_ms"] <= 5 and rr <= 2)])
    if "P5" in res:
        v = res["P5"]
        out.append(["P5 RunCycle, 100 tickers", f"{v['ms']:.1f} ms p50", f"{v['base_ms']:.1f} ms bundle + counts only",
                    f"{ratio(v['ms'], v['base_ms']):.1f}", "≤ 100 ms", verdict(v["ms"] <= 100)])
    if "P6" in res:
        v = res["P6"]
        rr = ratio(v["rate"], v["base"])
        out.append(["P6 ConsumeTicket via HTTP, c=32", f"{v['rate']:.0f} calls/s", f"{v['base']:.0f} calls/s gRPC",
                    f"{rr:.2f}", "≥ 0.5", verdict(rr >= 0.5)])
    if "P13" in res:
        v = res["P13"]
        out.append([f"P13 whole board via HTTP, {v['tickets']:,} tickets × {v['tickets']:,} results, pages of 1,000",
                    f"{v['walk_ms']:.0f} ms p50", f"{v['base_walk_ms']:.0f} ms via gRPC GetBoard",
                    f"{ratio(v['walk_ms'], v['base_walk_ms']):.2f}", "≤ 150 ms", verdict(v["walk_ms"] <= 150)])
        out.append(["P13 one 1,000-row page via HTTP", f"{v['page_ms']:.1f} ms p50",
                    f"{v['base_page_ms']:.1f} ms via gRPC GetBoard", f"{ratio(v['page_ms'], v['base_page_ms']):.2f}",
                    "—", "—"])
    for n, v in res.get("P11", {}).items():
        out.append([f"P11 submit -> event, {n} watcher{'s' if n > 1 else ''}",
                    f"p50 {v['p50_ms']:.2f} ms, p99 {v['p99_ms']:.2f} ms", "—", "—", "—", "—"])
    if "P12" in res:
        v = res["P12"]
        rr = ratio(v["rate"], v["base"])
        out.append(["P12 P1 c=32 with 100 watchers", f"{v['rate']:.0f} pairs/s (every watcher got "
                    f"{v['delivered']:.0%} of the events; server CPU {v['server_ms_per_pair']:.2f} ms per pair, "
                    f"the watchers' process {v['watchers_cpu_s']:.1f} CPU-s)",
                    f"{v['base']:.0f} pairs/s, no watcher (server CPU {v['base_server_ms_per_pair']:.2f} ms per pair)",
                    f"{rr:.2f}", "≥ 0.9", verdict(rr >= 0.9)])
    if "W" in res:
        v = res["W"]
        grown = (v["rss_during"] - v["rss_before"]) / 2**20
        out.append([f"{v['n']:,} idle watchers ({v['channels']} connections)",
                    f"server RSS +{grown:.1f} MiB ({grown * 1024 / v['n']:.1f} KiB each), "
                    f"fds +{v['fds_during'] - v['fds_before']}",
                    f"{v['rss_before'] / 2**20:.0f} MiB, {v['fds_before']} fds, no watcher",
                    f"{v['rss_during'] / max(1, v['rss_before']):.2f}", "—",
                    f"after they left: {v['rss_after'] / 2**20:.0f} MiB, {v['fds_after']} fds"])
    from bench.pg import rows as pg_rows

    if "P8" in res:
        out += pg_rows(res)
    return out


HEADER = ["row", "opsledger", "baseline (same run)", "ratio", "target", "verdict"]


def table(lines: list[list[str]]) -> str:
    out = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)


ROWS = ("P1", "P2", "P3", "P4", "P5", "P6", "P13", "P11", "P12", "W", "P8")


def run_all(mode: str, work: Path, only: tuple[str, ...] = ROWS) -> dict:
    size = SIZES[mode]
    res = {}
    t0 = time.perf_counter()
    for name in ("P1", "P2"):
        if name in only:
            res[name] = globals()[name.lower()](work, size)
    if "P1" in only:
        res["P1 traced"] = p1_traced(work, size)
    if "P3" in only or "P4" in only:
        data = fresh_root(work, "p3")
        counts = generate(data, size["p3_tickets"], in_progress=size["p3_in_progress"])
        if "P3" in only:
            res["P3"] = p3(data, size, counts)
            res["P3r"] = p3_restart(work, data, size, counts, res["P3"]["base"])
        if "P4" in only:
            res["P4"] = p4(data, size)
    for name in ("P5", "P6", "P13"):
        if name in only:
            res[name] = globals()[name.lower()](work, size)
    if "P11" in only or "P12" in only or "W" in only:
        from bench.watch_rows import idle_watchers, p11, p12

        if "P11" in only:
            res["P11"] = p11(work, size, fresh_root, median)
        if "P12" in only:
            res["P12"] = p12(work, size, fresh_root, median, client)
        if "W" in only:
            res["W"] = idle_watchers(work, size, fresh_root, median)
    if "P8" in only:  # P8-P10 share one PostgreSQL cluster
        from bench.pg import run_pg

        res.update(run_pg(mode, work))
    res["seconds"] = time.perf_counter() - t0
    return res


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--out", default=str(REPO / "docs" / "BENCHMARKS.md"), help="'-' to write no file")
    p.add_argument("--work", help="scratch folder (default: a temp folder, removed afterwards)")
    p.add_argument("--only", default=",".join(ROWS),
                   help="comma-separated rows to run (e.g. P13); a partial run writes no file")
    args = p.parse_args()
    mode = "smoke" if args.smoke else ("quick" if args.quick else "full")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="opsledger-bench-"))
    try:
        only = tuple(x.strip() for x in args.only.split(",") if x.strip())
        res = run_all(mode, work, only)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    lines = rows(res)
    text = table(lines)
    print(text)
    print(f"\n({mode} run, {res['seconds']:.0f} s, medians of {SIZES[mode]['rounds']} round(s))")
    if args.out != "-" and set(only) == set(ROWS):
        from bench.report import write_report

        write_report(Path(args.out), text, mode, machine(), res, " ".join(["python -m bench.run"] + sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
