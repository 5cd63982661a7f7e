"""Load generators, run as a separate process: ``python -m bench.clients KIND ...``.

Each prints one JSON object: ``{"ops", "seconds", "rate", "p50_ms", "p99_ms"}``.
Kinds:
  pairs     ConsumeTicket + CompleteTicket per ticket id (one op = the pair)
  noop      two Health.Check calls (one op = the pair) - the no-op baseline
  consume   ConsumeTicket per ticket id over gRPC
  http      POST /api/tickets/consume per ticket id through the HTTP gateway (aiohttp:
            a light client, so the gateway is measured more than the client)
  board-http / board-grpc
            walk the whole board in pages of 1,000 (GET /api/tickets/latest or GetBoard),
            ``count`` times; one op = one whole walk; also the median time of one page
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import aiohttp
import grpc
import orjson
from grpc_health.v1 import health_pb2, health_pb2_grpc

from opsledger.v1 import tickets_pb2 as pb
from opsledger.v1 import tickets_pb2_grpc


def _summary(latencies: list[float], seconds: float) -> dict:
    latencies.sort()
    n = len(latencies)
    return {
        "ops": n,
        "seconds": round(seconds, 4),
        "rate": round(n / seconds, 1) if seconds else 0.0,
        "p50_ms": round(statistics.median(latencies) * 1000, 3) if n else None,
        "p99_ms": round(latencies[min(n - 1, int(n * 0.99))] * 1000, 3) if n else None,
    }


async def _drive(concurrency: int, items: list, one) -> dict:
    queue = list(reversed(items))
    latencies: list[float] = []

    async def worker():
        while queue:
            item = queue.pop()
            t = time.perf_counter()
            await one(item)
            latencies.append(time.perf_counter() - t)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return _summary(latencies, time.perf_counter() - started)


async def _walk(page) -> tuple[float, list[float], int]:
    """Every page of the board, newest first; (seconds, per-page seconds, rows)."""
    pages, rows, token = [], 0, ""
    started = time.perf_counter()
    while True:
        t = time.perf_counter()
        n, token = await page(token)
        pages.append(time.perf_counter() - t)
        rows += n
        if not token:
            return time.perf_counter() - started, pages, rows


async def _board(kind: str, target: str, count: int) -> dict:
    walks, pages = [], []
    if kind == "board-http":
        async with aiohttp.ClientSession(base_url=target) as http:
            async def page(token):
                params = {"page_size": "1000"} | ({"page_token": token} if token else {})
                async with http.get("/api/tickets/latest", params=params) as r:
                    assert r.status == 200, await r.text()
                    body = orjson.loads(await r.read())
                return body["row_count"], body["next_page_token"]

            for _ in range(count):
                seconds, times, rows = await _walk(page)
                walks.append(seconds)
                pages += times
    else:
        async with grpc.aio.insecure_channel(target, options=[("grpc.max_receive_message_length", 1 << 22)]) as ch:
            tickets = tickets_pb2_grpc.TicketServiceStub(ch)

            async def page(token):
                reply = await tickets.GetBoard(pb.GetBoardRequest(page_size=1000, page_token=token), timeout=60)
                return reply.row_count, reply.next_page_token

            for _ in range(count):
                seconds, times, rows = await _walk(page)
                walks.append(seconds)
                pages += times
    out = _summary(walks, sum(walks))
    out["page_p50_ms"] = round(statistics.median(pages) * 1000, 3)
    out["rows"] = rows
    return out


async def run(kind: str, target: str, concurrency: int, ids: list[str], count: int) -> dict:
    if kind.startswith("board-"):
        return await _board(kind, target, count)
    if kind == "http":
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(base_url=target, connector=connector) as http:
            async def one(rid):
                async with http.post("/api/tickets/consume", json={"request_id": rid, "processor_id": "bench"}) as r:
                    assert r.status == 200, await r.text()
                    await r.read()

            return await _drive(concurrency, ids, one)
    async with grpc.aio.insecure_channel(target) as channel:
        tickets = tickets_pb2_grpc.TicketServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        if kind == "pairs":
            async def one(rid):
                await tickets.ConsumeTicket(pb.ConsumeTicketRequest(request_id=rid, processor_id="bench"), timeout=60)
                await tickets.CompleteTicket(pb.CompleteTicketRequest(
                    request_id=rid, status=pb.TicketStatus.DONE, processor_id="bench", message="ok"), timeout=60)

            return await _drive(concurrency, ids, one)
        if kind == "consume":
            async def one(rid):
                await tickets.ConsumeTicket(pb.ConsumeTicketRequest(request_id=rid, processor_id="bench"), timeout=60)

            return await _drive(concurrency, ids, one)
        if kind == "noop":
            request = health_pb2.HealthCheckRequest()

            async def one(_i):
                await health.Check(request, timeout=60)
                await health.Check(request, timeout=60)

            return await _drive(concurrency, list(range(count)), one)
    raise ValueError(kind)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=("pairs", "noop", "consume", "http", "board-http", "board-grpc"))
    p.add_argument("target")
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--ids-file")
    p.add_argument("--count", type=int, default=0)
    args = p.parse_args()
    ids = json.load(open(args.ids_file)) if args.ids_file else []
    print(json.dumps(asyncio.run(run(args.kind, args.target, args.concurrency, ids, args.count))))


if __name__ == "__main__":
    main()
