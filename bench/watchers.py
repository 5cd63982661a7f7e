"""Watchers for P11/P12, run as a separate process: ``python -m bench.watchers MODE TARGET ...``.

latency  N watchers from now; then submits COUNT tickets one at a time and
         measures, per (ticket, watcher), submit sent -> SUBMITTED event
         received. Prints {"p50_ms", "p99_ms", "deliveries"}.
hold     N watchers from now (over --channels connections); prints "ready" once every stream is open, then
         counts events until stdin closes; prints {"events", "per_watcher_min"}.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time

import grpc

from opsledger.v1 import tickets_pb2 as pb
from opsledger.v1 import tickets_pb2_grpc

PROGRESS = pb.TicketEvent.Kind.PROGRESS


async def _open(stub, n: int):
    calls = [stub.WatchTickets(pb.WatchTicketsRequest()) for _ in range(n)]
    for call in calls:  # the first message (PROGRESS) says the stream is open
        first = await call.read()
        assert first.kind == PROGRESS, first
    return calls


async def latency(target: str, n: int, count: int) -> dict:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = tickets_pb2_grpc.TicketServiceStub(channel)
        calls = await _open(stub, n)
        sent: dict[str, float] = {}
        lat: list[float] = []
        pending = {"left": count * n}
        done = asyncio.Event()

        async def follow(call):
            while pending["left"] > 0:
                event = await call.read()
                if event.kind != pb.TicketEvent.Kind.SUBMITTED:
                    continue
                key = event.request.payload["message_id"]
                lat.append(time.perf_counter() - sent[key])
                pending["left"] -= 1
            done.set()

        tasks = [asyncio.create_task(follow(c)) for c in calls]
        for i in range(count):
            key = f"lat-{i}"
            req = pb.SubmitTicketRequest(request_type=pb.RequestType.ACKNOWLEDGE)
            req.payload.update({"message_id": key})
            sent[key] = time.perf_counter()
            await stub.SubmitTicket(req, timeout=60)
            await asyncio.sleep(0.01)  # one at a time: latency, not throughput
        await asyncio.wait_for(done.wait(), 120)
        for c in calls:
            c.cancel()
        for t in tasks:
            t.cancel()
        lat.sort()
        return {"p50_ms": round(statistics.median(lat) * 1000, 3),
                "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 3), "deliveries": len(lat)}


def _cpu_s() -> float:
    """CPU seconds this process has used (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def hold(target: str, n: int, channels: int = 1) -> dict:
    # A local subchannel pool per channel: each channel its own TCP connection (else grpc shares one).
    opened = [grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
              for _ in range(channels)]
    try:
        calls = []
        for i, channel in enumerate(opened):
            calls += await _open(tickets_pb2_grpc.TicketServiceStub(channel), n // channels + (i < n % channels))
        counts = [0] * n

        async def follow(i, call):
            while True:
                event = await call.read()
                if event is grpc.aio.EOF:
                    return
                if event.kind != PROGRESS:
                    counts[i] += 1

        tasks = [asyncio.create_task(follow(i, c)) for i, c in enumerate(calls)]
        print("ready", flush=True)
        cpu_before = _cpu_s()
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        for c in calls:
            c.cancel()
        for t in tasks:
            t.cancel()
        return {"events": sum(counts), "per_watcher_min": min(counts), "cpu_s": _cpu_s() - cpu_before}
    finally:
        for channel in opened:
            await channel.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=("latency", "hold"))
    p.add_argument("target")
    p.add_argument("--watchers", type=int, default=1)
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--channels", type=int, default=1, help="hold: spread the watchers over this many connections")
    a = p.parse_args()
    coro = latency(a.target, a.watchers, a.count) if a.mode == "latency" else hold(a.target, a.watchers, a.channels)
    print(json.dumps(asyncio.run(coro)), flush=True)


if __name__ == "__main__":
    main()
