"""``make torture``: the reliability suite, with figures in docs/RELIABILITY.md.

``python -m torture.run`` (full: 50 kill rounds, 5-minute soak) or
``--short`` (the form ``make test`` runs through tests/reliability). Exits 1
when any check failed.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from torture import corrupt, faults, fuzz, killloop, partitions, soak

REPO = Path(__file__).resolve().parents[1]
MODES = {
    "full": dict(kill_rounds=50, fuzz_examples=150, bundle_examples=300, soak_s=300,
                 checkpoint_examples=300, checkpoint_kills=20, pg_kill_rounds=20),
    # the checkpoint tests' short form runs in make test itself (tests/ledger/test_checkpoint.py)
    "short": dict(kill_rounds=3, fuzz_examples=15, bundle_examples=30, soak_s=8,
                  checkpoint_examples=0, checkpoint_kills=0, pg_kill_rounds=0),
}


def run_all(mode: str, work: Path, log=print) -> dict:
    m = MODES[mode]
    res = {"mode": mode, "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
    t0 = time.perf_counter()
    res["kill"] = killloop.run(work / "kill", m["kill_rounds"], log=log)
    res["faults"] = faults.run(work / "faults", log=log)
    res["corrupt"] = corrupt.run(work / "corrupt", log=log)
    (work / "fuzz").mkdir()
    res["fuzz"] = fuzz.fuzz_rpcs(work / "fuzz" / "root", m["fuzz_examples"], log=log)
    res["fuzz_bundles"] = fuzz.fuzz_bundles(work / "fuzz", m["bundle_examples"], log=log)
    res["soak"] = soak.run(work / "soak", m["soak_s"], log=log)
    res["checkpoint"] = checkpoint_tests(m["checkpoint_examples"], m["checkpoint_kills"], log=log)
    res["pg_kill"] = pg_kill_tests(m["pg_kill_rounds"], log=log)
    # the partition scenarios' short form runs in make test itself (tests/postgres/test_partitions.py)
    res["partitions"] = partitions.run_all("full", work / "partitions", log=log) if mode == "full" else []
    res["seconds"] = round(time.perf_counter() - t0)
    res["passed"] = passed(res)
    return res


def _pytest(target: str, env: dict[str, str], *args: str) -> tuple[bool, str]:
    """One test file of ``make test`` run long: its size comes from environment variables."""
    import os
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", target, *args],
                          cwd=REPO, env=dict(os.environ, **env), capture_output=True, text=True, timeout=3600)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-500:]
    return proc.returncode == 0, summary


def checkpoint_tests(examples: int, kills: int, log=print) -> dict:
    """The index checkpoint's property test and SIGKILL test, with many more examples."""
    if not examples:
        return {"examples": 0, "kills": 0, "passed": True, "summary": "run by make test (short form)"}
    ok, summary = _pytest("tests/ledger/test_checkpoint.py", {"OPSLEDGER_CHECKPOINT_EXAMPLES": str(examples),
                                                              "OPSLEDGER_CHECKPOINT_KILLS": str(kills)})
    log(f"checkpoint tests ({examples} random workloads, {kills} SIGKILL rounds): {summary}")
    return {"examples": examples, "kills": kills, "passed": ok, "summary": summary}


def pg_kill_tests(rounds: int, log=print) -> dict:
    """SIGKILL a PostgreSQL replica under load, round after round (3 rounds in make test)."""
    if not rounds:
        return {"rounds": 0, "passed": True, "summary": "run by make test (3 rounds)"}
    ok, summary = _pytest("tests/postgres/test_replicas.py", {"OPSLEDGER_PG_KILL_ROUNDS": str(rounds)},
                          "-k", "sigkill")
    log(f"PostgreSQL replica SIGKILL loop ({rounds} rounds): {summary}")
    return {"rounds": rounds, "passed": ok, "summary": summary}


def passed(res: dict) -> bool:
    k = res["kill"]
    return (
        k["lost"] == 0 and not k["problems"] and not k["unexpected"]
        and all(f["passed"] for f in res["faults"])
        and all(c["passed"] for c in res["corrupt"])
        and not res["fuzz"]["failures"] and not res["fuzz_bundles"]["failures"]
        and res["soak"]["errors"] == 0
        and res["checkpoint"]["passed"]
        and res["pg_kill"]["passed"]
        and all(r["verdict"] == "pass" for r in res.get("partitions", []))
    )


def report(res: dict, command: str) -> str:
    k, s = res["kill"], res["soak"]
    c = res["checkpoint"]
    ck_text = (f"`tests/ledger/test_checkpoint.py` with {c['examples']} random workloads (random crash "
               f"points: killed, torn append, torn checkpoint, half-written checkpoint temp file, no checkpoint) "
               f"and {c['kills']} SIGKILL rounds of a process writing checkpoints while it works: "
               f"checkpoint + tail gave the state of a full replay (board under every filter, counts, every "
               f"ticket's history, claim order) every time: {c['summary']}." if c["examples"] else
               f"The checkpoint's property and kill tests: {c['summary']}.")
    fault_rows = "\n".join(
        f"| {f['case']} | {f.get('failing_call', f.get('answer'))} | {f.get('next_write', '—')} | "
        f"{f.get('health', '—')} | {f.get('after_restart', 'receipt verifies' if f.get('receipt_verifies') else ('stderr says why' if f.get('stderr_says_why') else '—'))} | "
        f"{'pass' if f['passed'] else 'FAIL'} |" for f in res["faults"])
    corrupt_rows = "\n".join(
        f"| {c['log']} | {c['case']} | {c['startup']} | {c['fsck'][0]} | "
        f"{'yes' if c['nothing_rewritten_silently'] else 'NO'} | {'pass' if c['passed'] else 'FAIL'} |"
        for c in res["corrupt"])
    fz, fb = res["fuzz"], res["fuzz_bundles"]
    return f"""# Reliability

Figures of the last run of `{command}` ({res['mode']} form) on {res['started']}, {res['seconds']} s in all.
Overall: **{'all checks passed' if res['passed'] else 'SOME CHECKS FAILED'}**.
`make test` runs the short form (3 kill rounds, a few fuzz examples, an 8 s soak) through
`tests/reliability/`; `make torture` runs this full form and rewrites this page.

## 1. Kill loop

A server process on one root, 16 client threads submitting, consuming and completing their
own tickets and one thread running live cycles; SIGKILL at a random moment (0.3–1.5 s into the
round); a new server on the same root; then the checks.

| rounds killed | acknowledged calls checked | calls lost | other problems | torn tails moved aside | lines in the logs at the end |
|---|---|---|---|---|---|
| {k['rounds']} | {k['acknowledged']:,} | **{k['lost']}** | {len(k['problems']) + len(k['unexpected'])} | {k['torn_files']} | {k['lines']['state/tickets/ticket_requests.jsonl']:,} requests, {k['lines']['state/tickets/ticket_results.jsonl']:,} results |

After every restart: every acknowledged submit, consume, complete and cycle snapshot was on disk;
both logs ended with a newline and every line parsed; `fsck` found no error; the board (all
pages of GetBoard) equalled an independent replay of the logs; the latest receipt verified.
{'A half-written tail was cut and kept aside ' + str(k['torn_files']) + ' time(s).' if k['torn_files'] else
 'No kill left a half-written line: a batch is one `write` call, which SIGKILL does not split; the torn-tail path is exercised by the corrupt-file cases below.'}
{('Problems: ' + '; '.join((k['problems'] + k['unexpected'])[:10])) if (k['problems'] or k['unexpected']) else ''}

On PostgreSQL (`tests/postgres/test_replicas.py::test_sigkill_a_replica_under_load_loses_no_acknowledged_call`,
{res['pg_kill']['rounds'] or 3} rounds): a surviving replica and, each round, a new one on the same
database that 8 clients submit to and claim through until it is SIGKILLed mid-load; afterwards
every acknowledged claim is in the database with the result id its caller was given, the
survivor serves them all, and `fsck` passes on an `opsledger export`:
{res['pg_kill']['summary']}.

## 2. I/O faults

Injected at the store's I/O boundary (`JsonlLedger.write` / `JsonlLedger.sync`); a loop-device
filesystem was not used (it needs privileges CI may not have).

| fault | the failing call | the next write | health | after restart / outcome | |
|---|---|---|---|---|---|
{fault_rows}

## 3. Corrupt files

Each damage applied to a copy of a small ledger, then start-up and `fsck`.

| log | damage | start-up | fsck (first finding) | nothing rewritten silently | |
|---|---|---|---|---|---|
{corrupt_rows}

Each case runs with the index checkpoint the clean stop wrote (the damage then lies inside what
it covered: start-up stops on a log that lost or changed covered lines) and without one.

A byte flipped *inside a free-text value* (a message, a reason) still leaves a valid record, and
the contract's line format has no per-line checksum. Without a checkpoint such a flip cannot be
detected; once an index checkpoint covers the line, its CRC-32 is recorded, and start-up (near the
cut or the head of a log) or the background scrub (anywhere in the covered prefix) finds it and
names the line (section 6).

## 4. Fuzzing (hypothesis)

| target | examples tried | failures |
|---|---|---|
| every TicketService RPC, random fields (Unicode edge cases, NUL, huge strings, unknown enum numbers, NaN/∞) over gRPC | {fz['grpc_examples']:,} | {len([f for f in fz['failures']])} |
| the HTTP gateway: random bytes (invalid UTF-8 included), random JSON, wrong content types, random `Authorization` headers, random query strings | {fz['http_examples']:,} | (in the row above: one list) |
| gRPC bytes that are not the message: random, bit-flipped, truncated, a Struct nested 95–400 levels (INVALID_ARGUMENT, never INTERNAL/UNKNOWN) | {fz.get('malformed_pb_examples', 0):,} | (in the row above: one list) |
| HTTP bodies with a key given twice (top level or inside `payload`): always 400 naming the key, nothing written | {fz.get('duplicate_key_examples', 0):,} | (in the row above: one list) |
| bundles for the live cycle: mutated STRATEGY_BUNDLE_V1, random JSON, random bytes | {fb['bundle_examples']:,} | {len(fb['failures'])} |

Properties: no INTERNAL/UNKNOWN status and no 5xx, no crash, no line written for a refused
input; every bundle gives a receipt that verifies, with an outcome from the result table
(reasons seen: {json.dumps(fb['results'])}).
{('Failures: ' + '; '.join((fz['failures'] + fb['failures'])[:10])) if (fz['failures'] or fb['failures']) else ''}

## 5. Soak

{s['seconds']} s of steady mixed load (8 clients, 40 calls/s each: submit, consume, complete,
board) on a server process.

| calls | errors | RSS start → end (max) | tickets held start → end | RSS growth per ticket added | open fds start → end | p99 per window (ms) |
|---|---|---|---|---|---|---|
| {s['ops']:,} | {s['errors']} | {s['rss_start_mib']} → {s['rss_end_mib']} MiB ({s['rss_max_mib']}) | {s['tickets_start']:,} → {s['tickets_end']:,} | {s['rss_growth_per_ticket_b']} B | {s['fds_start']} → {s['fds_end']} | {', '.join(str(x) for x in s['p99_ms_by_window'])} |

The index holds every ticket, so RSS grows with the tickets submitted during the soak; the
figure per ticket added is the growth of a whole serving process over a few tens of thousands
of tickets (allocator arenas and every other per-process growth included), not the index's
steady state that P3d measures at a million tickets, so the two are different quantities.
Beyond that growth RSS stays flat, and so do the open file descriptors and the p99.

## 6. Index checkpoint

{ck_text}

What the checkpoint trusts, and what checks it:

- **Its own bytes**: a sha256 over the whole file, checked before anything in it is used; a
  version and the byte order in its header. Missing, torn, damaged, another version or
  inconsistent (its columns disagree) → a warning and a full replay, never a partial state.
- **That the logs are the ones it was made from**: for each log, the size and line count at the
  cut, the sha256 of its first 4 KiB and of the 4 KiB before the cut, and its device and inode.
  A log shorter than the cut, or whose bytes there differ, is not a bad checkpoint but lost or
  replaced history: start-up stops naming the file, the line where it differs and both sizes,
  until `--accept-log-loss` (which sets the checkpoint aside and takes the logs as they are).
  The same bytes under another inode (a restore, a copy) are accepted, with a note.
- **That the covered lines are what was indexed**: one CRC-32 per covered line, recorded when the
  line was read or written. Start-up does not re-read them; a background scrub does, at the
  lowest CPU priority, once the server reports SERVING (progress in the log and in `/metrics`:
  `opsledger_scrub_bytes_verified` of `opsledger_scrub_bytes_total`, `opsledger_scrub_state`).
  A line whose CRC differs turns the store read-only and health NOT_SERVING, exactly like a
  failed fsync, names the file and line, and sets the checkpoint aside so the next start reads
  every line again. `opsledger fsck` reads every line of both logs as before, and also checks
  every covered line against the checkpoint.
- **What is not covered**: lines appended after the cut (the tail) are replayed and checked
  line by line at start-up as without a checkpoint; so is everything when no checkpoint is
  usable.

## 7. Bugs found and fixed

- The gateway's keep-alive replies waited ~40 ms for delayed ACKs (its socket lacked
  `IPPROTO_TCP`, so asyncio never set `TCP_NODELAY`) — found by the benchmark; regression test
  `tests/gateway/test_gateway.py::test_gateway_socket_is_tcp_so_replies_are_not_delayed`.
- A non-ASCII `Authorization` header made the gateway answer 500 (gRPC metadata must be
  printable ASCII, and the call raised before reaching the server) — found by fuzzing the
  gateway's headers; now a 400 naming `authorization`, and any other unexpected gateway error
  is a JSON 500; regression test
  `tests/gateway/test_gateway.py::test_non_ascii_authorization_header_is_400_not_500`.
- Line numbers in catch-up anomaly reports drifted after the process's own appends (its own
  lines were not counted); fixed in `JsonlLedger._append`, covered by the kill loop's `fsck` and
  the store tests.
""" + partitions.report(res.get("partitions", []))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--short", action="store_true")
    p.add_argument("--out", default=str(REPO / "docs" / "RELIABILITY.md"), help="'-' to write no file")
    args = p.parse_args()
    mode = "short" if args.short else "full"
    work = Path(tempfile.mkdtemp(prefix="opsledger-torture-"))
    try:
        res = run_all(mode, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.out != "-":
        Path(args.out).write_text(report(res, "python -m torture.run" + (" --short" if args.short else "")),
                                  encoding="utf-8")
    print(json.dumps({k: v for k, v in res.items() if k in ("mode", "seconds", "passed")}))
    return 0 if res["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
