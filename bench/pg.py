"""PostgreSQL rows P8-P10, each against a baseline measured in the same run.

P8  store transitions/s (submit, consume, complete) at c=1 and c=32:
    the PostgreSQL backend vs the JSONL backend, both in-process.
P9  a ticket's whole life (SubmitTicket -> ConsumeNext -> CompleteTicket over
    gRPC, one replica) at 32 workers vs Procrastinate defer -> fetch -> finish
    on the same PostgreSQL server.
P10 pairs/s (consume + complete) at 32 through two replicas vs one, and the
    ConsumeNext wake-up across replicas (waiter on B, submit on A) p50/p99.

The cluster is a throwaway one (tests/pg.py), fsync on, sharing the cores.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.helpers import REPO, ServerProcess
from tests.pg import PgCluster

SIZES = {
    "full": dict(rounds=3, p8={1: 300, 32: 60}, p9=3000, p10=3000, wake=100),
    "quick": dict(rounds=1, p8={1: 100, 32: 15}, p9=800, p10=800, wake=30),
    "smoke": dict(rounds=1, p8={1: 5, 32: 1}, p9=64, p10=64, wake=3),
}


def _median(xs):
    return statistics.median(xs) if xs else float("nan")


def _threads(n: int, fn) -> float:
    threads = [threading.Thread(target=fn, args=(i,)) for i in range(n)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return time.perf_counter() - t


def _fresh_db(cluster: PgCluster, name: str) -> str:
    from opsledger.server.ledger.postgres import migrate

    cluster.drop_database(name)
    url = cluster.create_database(name)
    migrate.migrate(url, log=lambda _m: None)
    return url


# -- P8 ----------------------------------------------------------------------------------
def p8(cluster: PgCluster, work: Path, size: dict) -> dict:
    from opsledger.server.ledger.backend import Submit, Transition
    from opsledger.server.ledger.jsonl.store import JsonlLedger
    from opsledger.server.ledger.machine import Event
    from opsledger.server.ledger.postgres.ledger import PostgresLedger

    payload = {"message_id": "m"}
    out = {}
    for conc, per in size["p8"].items():
        pg_rates, jsonl_rates = [], []
        for r in range(size["rounds"]):
            for kind in ("pg", "jsonl"):
                if kind == "pg":
                    store = PostgresLedger(_fresh_db(cluster, f"p8_{conc}_{r}")).open()
                else:
                    store = JsonlLedger(work / f"p8-{conc}-{r}").open()

                def ops(_i, store=store):
                    for _ in range(per):  # noqa: B023 - called within this iteration
                        rid = store.call(Submit("ACKNOWLEDGE", payload, None, None)).request["request_id"]
                        store.call(Transition(rid, Event.CONSUME, "bench", "start"))
                        store.call(Transition(rid, Event.COMPLETE_DONE, "bench", "done"))

                try:
                    rate = 3 * per * conc / _threads(conc, ops)
                finally:
                    store.close()
                (pg_rates if kind == "pg" else jsonl_rates).append(rate)
        out[conc] = {"rate": _median(pg_rates), "base": _median(jsonl_rates)}
    return out


# -- P9 ----------------------------------------------------------------------------------
LIFE = """
import asyncio, json, sys, time
import grpc
from google.protobuf import struct_pb2
from opsledger.v1 import tickets_pb2 as pb, tickets_pb2_grpc

async def main(target, n, conc):
    async with grpc.aio.insecure_channel(target) as ch:
        t = tickets_pb2_grpc.TicketServiceStub(ch)
        left = [n]
        async def worker(w):
            while left[0] > 0:
                left[0] -= 1
                payload = struct_pb2.Struct(); payload.update({"message_id": "m"})
                await t.SubmitTicket(pb.SubmitTicketRequest(request_type=pb.RequestType.ACKNOWLEDGE, payload=payload))
                got = await t.ConsumeNext(pb.ConsumeNextRequest(processor_id=f"w{w}", wait_seconds=5))
                await t.CompleteTicket(pb.CompleteTicketRequest(request_id=got.request_id, status=pb.TicketStatus.DONE,
                                                                processor_id=f"w{w}", message="ok"))
        started = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(conc)))
        print(json.dumps({"rate": n / (time.perf_counter() - started)}))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""

PROCRASTINATE = """
import asyncio, json, sys, time
from procrastinate import App, PsycopgConnector
from procrastinate.jobs import Status

async def main(conninfo, n, conc):
    app = App(connector=PsycopgConnector(conninfo=conninfo, min_size=conc, max_size=conc))

    @app.task(name="life")
    def life():
        pass

    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        worker_id = await app.job_manager.register_worker()
        left = [n]
        async def worker():
            while left[0] > 0:
                left[0] -= 1
                await life.defer_async()
                # Another worker may have taken the job just deferred, before deferring its own:
                # ask again (never finish None).
                while (job := await app.job_manager.fetch_job(queues=None, worker_id=worker_id)) is None:
                    await asyncio.sleep(0)
                await app.job_manager.finish_job(job, status=Status.SUCCEEDED, delete_job=False)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conc)))
        print(json.dumps({"rate": n / (time.perf_counter() - started)}))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""


def _py(code: str, *args) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                         timeout=900, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def p9(cluster: PgCluster, work: Path, size: dict) -> dict:
    """Also the same life on the JSONL backend: what the gRPC service reaches on this
    machine with no database at all (the ceiling of any backend behind it here)."""
    ours, theirs, embedded = [], [], []
    for r in range(size["rounds"]):
        url = _fresh_db(cluster, f"p9_{r}")
        srv = ServerProcess(work / f"p9-{r}", "--store", url, http=False, log_level="WARNING")
        try:
            ours.append(_py(LIFE, srv.target, size["p9"], 32)["rate"])
        finally:
            srv.terminate()
        cluster.drop_database(f"p9q_{r}")
        cluster.create_database(f"p9q_{r}")
        theirs.append(_py(PROCRASTINATE, cluster.url(f"p9q_{r}"), size["p9"], 32)["rate"])
        srv = ServerProcess(work / f"p9j-{r}", http=False, log_level="WARNING")
        try:
            embedded.append(_py(LIFE, srv.target, size["p9"], 32)["rate"])
        finally:
            srv.terminate()
    return {"rate": _median(ours), "base": _median(theirs), "jsonl": _median(embedded)}


# -- P10 ---------------------------------------------------------------------------------
def _pairs_client(target: str, ids: list[str], conc: int) -> subprocess.Popen:
    import tempfile

    f = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump(ids, f)
    f.close()
    return subprocess.Popen([sys.executable, "-m", "bench.clients", "pairs", target, "--concurrency", str(conc),
                             "--ids-file", f.name], cwd=REPO, stdout=subprocess.PIPE, text=True)


def _submit_many(target: str, n: int) -> list[str]:
    from opsledger.client.ledger_client import OpsledgerClient

    ids: list[str] = []
    with OpsledgerClient(target, retries=0, timeout=30) as c:
        while len(ids) < n:  # in waves under the server's limit of calls in progress
            futs = [c.tickets.SubmitTicket.future(_submit_request()) for _ in range(min(128, n - len(ids)))]
            ids += [f.result().request_id for f in futs]
    return ids


def _submit_request():
    from google.protobuf import struct_pb2

    from opsledger.v1 import tickets_pb2 as pb

    payload = struct_pb2.Struct()
    payload.update({"message_id": "m"})
    return pb.SubmitTicketRequest(request_type=pb.RequestType.ACKNOWLEDGE, payload=payload)


def p10(cluster: PgCluster, work: Path, size: dict) -> dict:
    from opsledger.client.ledger_client import OpsledgerClient

    one, two, wake = [], [], []
    n = size["p10"]
    for r in range(size["rounds"]):
        url = _fresh_db(cluster, f"p10_{r}")
        a = ServerProcess(work / f"p10a-{r}", "--store", url, http=False, log_level="WARNING")
        b = ServerProcess(work / f"p10b-{r}", "--store", url, http=False, log_level="WARNING")
        try:
            ids = _submit_many(a.target, 2 * n)
            t = time.perf_counter()
            p = _pairs_client(a.target, ids[:n], 32)
            p.communicate(timeout=900)
            one.append(n / (time.perf_counter() - t))
            t = time.perf_counter()
            procs = [_pairs_client(a.target, ids[n::2], 16), _pairs_client(b.target, ids[n + 1::2], 16)]
            for p in procs:
                p.communicate(timeout=900)
            two.append(n / (time.perf_counter() - t))
            with OpsledgerClient(a.target, retries=0, timeout=30) as ca, \
                    OpsledgerClient(b.target, retries=0, timeout=30) as cb:
                for _ in range(size["wake"]):
                    waiter = cb.consume_next_future("waker", wait_seconds=10)
                    time.sleep(0.05)  # parked on B
                    t = time.perf_counter()
                    ca.submit("ACKNOWLEDGE", {"message_id": "w"})
                    got = waiter.result(20)
                    if got.claimed:
                        wake.append(time.perf_counter() - t)
        finally:
            a.terminate()
            b.terminate()
    wake.sort()
    return {"one": _median(one), "two": _median(two),
            "wake_p50_ms": 1000 * _median(wake),
            "wake_p99_ms": 1000 * wake[min(len(wake) - 1, int(len(wake) * 0.99))] if wake else float("nan")}


def run_pg(mode: str, work: Path) -> dict:
    size = SIZES[mode]
    cluster = PgCluster().start()
    try:
        return {"P8": p8(cluster, work, size), "P9": p9(cluster, work, size), "P10": p10(cluster, work, size)}
    finally:
        cluster.destroy()


def rows(res: dict) -> list[list[str]]:
    def ratio(a, b):
        return a / b if b else float("nan")

    out = []
    for conc, v in res["P8"].items():
        rr = ratio(v["rate"], v["base"])
        out.append([f"P8 c={conc}", f"{v['rate']:.0f} transitions/s (PostgreSQL)", f"{v['base']:.0f} transitions/s (JSONL)",
                    f"{rr:.2f}", "≥ 0.5" if conc == 32 else "—",
                    ("met" if rr >= 0.5 else "MISSED") if conc == 32 else "—"])
    v = res["P9"]
    rr = ratio(v["rate"], v["base"])
    out.append(["P9 ticket life, 32 workers", f"{v['rate']:.0f} lives/s", f"{v['base']:.0f} jobs/s (Procrastinate)",
                f"{rr:.2f}", "≥ 2×", "met" if rr >= 2 else "MISSED"])
    out.append(["P9 the same life on the JSONL backend (the service's ceiling here)", f"{v['jsonl']:.0f} lives/s",
                f"{v['base']:.0f} jobs/s (Procrastinate)", f"{ratio(v['jsonl'], v['base']):.2f}", "—", "—"])
    v = res["P10"]
    rr = ratio(v["two"], v["one"])
    out.append(["P10 pairs/s c=32, 2 replicas", f"{v['two']:.0f} pairs/s", f"{v['one']:.0f} pairs/s (1 replica)",
                f"{rr:.2f}", "—", "—"])
    out.append(["P10 ConsumeNext wake-up across replicas", f"p50 {v['wake_p50_ms']:.1f} ms, p99 {v['wake_p99_ms']:.1f} ms",
                "—", "—", "—", "—"])
    return out


if __name__ == "__main__":
    import argparse
    import tempfile

    p = argparse.ArgumentParser()
    p.add_argument("--mode", default="quick", choices=tuple(SIZES))
    mode = p.parse_args().mode
    work = Path(tempfile.mkdtemp(prefix="opsledger-bench-pg-"))
    result = run_pg(mode, work)
    from bench.run import table

    print(table(rows(result)))
    print(json.dumps(result))
