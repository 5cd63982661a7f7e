"""Writes docs/BENCHMARKS.md from a run's table (the prose explains each row)."""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

ROWS = """\
- **P1** — ConsumeTicket + CompleteTicket pairs per second over gRPC with
  `--fsync always` (every OK is on disk), clients in a separate process
  (grpc.aio, c concurrent callers). Baseline: a pair of no-op unary RPCs
  (`grpc.health.v1.Health/Check`) served by the same grpc.aio server, same
  interceptors, same client. p50/p99 are per pair. "Tracing on" is the same
  P1 with `OTEL_EXPORTER_OTLP_ENDPOINT` set, every span (RPC, ledger commit)
  exported by OTLP/gRPC in batches to a receiver in the benchmark process;
  its baseline is P1 with tracing off (the default) at the same concurrency.
- **P2** — store-level durable transitions per second (submit, consume,
  complete; each one acknowledged only once fsynced), c threads. Baseline:
  the same check-then-append over SQLite (WAL, `synchronous=FULL`, one
  transaction per transition), `bench/sqlite_ledger.py`.
- **P3c** — cold start without an index checkpoint: the store's start-up
  replay of the two logs (structure check of every line, state machine,
  index), seconds and peak RSS of the process. Baseline: reading the same
  files and `orjson.loads` of every line, nothing kept. "Per 1M tickets
  held" is the replay process's peak RSS above the parse-only process's,
  scaled to one million tickets.
- **P3a** — `opsledger serve` started on the same logs with an index
  checkpoint covering all of them (written by `opsledger checkpoint`),
  timed from the process start to a `grpc.health.v1` Check answering
  SERVING, then stopped with SIGTERM. Baseline: P3c's parse-only time.
- **P3b** — the same after a tail of calls (submit, consume, complete)
  appended since the checkpoint, the server stopped with SIGKILL each
  round (so no checkpoint is written at stop and every start replays the
  tail).
- **P3d** — VmRSS of the P3a server once SERVING, minus the VmRSS of the
  same server started on an empty root, per million tickets held.
- **P13** — the whole board (10,000 tickets, one result each) walked page
  by page (1,000 rows) through `GET /api/tickets/latest` (aiohttp, one
  keep-alive connection, each body parsed to read the next token), against
  the same walk through `GetBoard` over gRPC (grpc.aio); the second row is
  the median single page of each. Client in a separate process.
- **P4** — server-side GetBoard (the servicer's work: index page, reading
  the 100 rows back, building the reply; no network), first page of 100
  filtered to IN_PROGRESS, with 1,000,000 tickets of which 1,000 in
  progress. Baseline: the same first page unfiltered.
- **P5** — one whole RunCycle (bundle check, reco, ops summary, push,
  receipt; every report written snapshot + latest with fsync) with a
  100-ticker bundle and 100,000 tickets in the ledger. Baseline: reading and
  parsing the bundle and reading the ledger counts alone.
- **P6** — ConsumeTicket through the HTTP gateway (aiohttp client, 32
  concurrent keep-alive connections) against the same call over gRPC
  directly (grpc.aio, 32 concurrent), on the same server, each on its own
  half of the same OPEN tickets.
- **P8** — store-level durable transitions per second (submit, consume,
  complete), c threads, on the PostgreSQL backend (a throwaway local
  cluster, fsync on, sharing the two cores) against the JSONL backend in
  the same run (`bench/pg.py`).
- **P9** — a ticket's whole life over gRPC (SubmitTicket → ConsumeNext →
  CompleteTicket) by 32 concurrent workers against one PostgreSQL-backed
  replica, against Procrastinate 3.10 doing defer → fetch_job → finish_job
  with 32 concurrent workers on the same PostgreSQL server. Beside it, the
  same life against a JSONL-backed server: what the gRPC service itself
  reaches on this machine with no database (a ceiling for any backend).
- **P10** — consume + complete pairs per second at 32 callers through two
  replicas on one database (16 callers each) against one replica (32
  callers); and the ConsumeNext wake-up across replicas: a waiter parked
  on replica B, a submit on replica A, time from the submit's start to
  the waiter's answer (p50/p99).
- **P1 tracing on** — P1 at c=8 with OpenTelemetry on, every span exported
  by OTLP/gRPC to a receiver in the bench process, against P1 c=8 with
  tracing off in the same run.
- **P11** — WatchTickets latency: time from a SubmitTicket's start to its
  SUBMITTED event arriving at each of 1 or 100 watchers (another process),
  p50/p99 over every (ticket, watcher).
- **P12** — P1 c=32 with 100 unfiltered watchers attached (another
  process, every watcher receiving every event) against P1 c=32 with none,
  on the same data. The row also gives the server's CPU per pair in both
  and the CPU the watchers' own process used: each event is one gRPC
  message per watcher, so 100 watchers turn every pair's two events into
  200 sends, and the server's CPU per pair grows with them.
- **W** — server RSS and open descriptors with 1,000 idle watchers (over
  100 connections) against none, and after they leave.
"""

NOTES = Path(__file__).with_name("NOTES.md")


def write_report(path: Path, table: str, mode: str, machine: str, res: dict, command: str) -> None:
    notes = NOTES.read_text(encoding="utf-8") if NOTES.exists() else ""
    text = f"""# Benchmarks

Measured by `{command}` (`make bench`{' --quick' if mode == 'quick' else ''}) on
{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}, {mode} run, medians of the rounds,
{res['seconds']:.0f} s in all.

Machine: {machine}. Client and server share the machine's cores.

{table}

## What each row measures

{ROWS}
{notes}"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
