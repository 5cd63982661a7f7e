"""Write valid ledger logs of any size quickly (no RPCs): ``python -m bench.gen ROOT --tickets N``.

Tickets are spread over the last ``days`` days; ``in_progress`` of them are
left IN_PROGRESS (consumed long ago), ``open`` stay OPEN, the rest are
consumed and completed (DONE, every 10th FAILED). Lines are made by the
product's own record builders, so they are exactly what the server writes.
"""
from __future__ import annotations

import argparse
import random
import uuid
from datetime import timedelta
from pathlib import Path

from opsledger.server.common.clock import Clock, iso
from opsledger.server.ledger import records
from opsledger.server.ledger.jsonl.store import REQUESTS, RESULTS

TYPES = [
    ("ACKNOWLEDGE", {"message_id": "msg-{i}"}),
    ("REQUEST_RECONCILE", {"mode": "INCREMENTAL", "reason": "daily reconcile {i}", "lookback_days": 7}),
    ("REQUEST_REPORTS", {"mode": "REGEN", "scope": "PHASE_C_LATEST", "reason": "regen {i}"}),
    ("REQUEST_LIVE_CYCLE", {"reason": "scheduled {i}"}),
]


def generate(root: Path, tickets: int, in_progress: int = 0, open_: int = 0, days: int = 30,
             seed: int = 7) -> dict:
    rnd = random.Random(seed)
    root = Path(root)
    (root / REQUESTS).parent.mkdir(parents=True, exist_ok=True)
    now = Clock().now()
    start = now - timedelta(days=days)
    step = timedelta(days=days).total_seconds() / max(tickets, 1)
    # which tickets stay OPEN / IN_PROGRESS: the newest ones
    ids = []
    n_results = 0
    with open(root / REQUESTS, "wb") as req, open(root / RESULTS, "wb") as res:
        req_buf, res_buf = [], []
        for i in range(tickets):
            when = start + timedelta(seconds=i * step)
            rtype, payload = TYPES[i % len(TYPES)]
            payload = {k: (v.format(i=i) if isinstance(v, str) else v) for k, v in payload.items()}
            rid = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
            ids.append(rid)
            req_buf.append(records.encode(records.request_record(rid, iso(when), rtype, payload, None, None)))
            left = tickets - i
            if left <= open_:
                pass
            else:
                t1 = when + timedelta(seconds=30)
                res_buf.append(records.encode(records.result_record(
                    str(uuid.UUID(int=rnd.getrandbits(128), version=4)), rid, iso(t1), "IN_PROGRESS",
                    f"worker-{i % 4}", "ticket processing started", [])))
                n_results += 1
                # the in-progress ones are the oldest, so the reaper would find them
                if i >= in_progress:
                    status = "FAILED" if i % 10 == 0 else "DONE"
                    res_buf.append(records.encode(records.result_record(
                        str(uuid.UUID(int=rnd.getrandbits(128), version=4)), rid, iso(t1 + timedelta(seconds=90)),
                        status, f"worker-{i % 4}", f"[MOCK_ONLY] Simulated {rtype}", [])))
                    n_results += 1
            if len(req_buf) >= 10000:
                req.write(b"".join(req_buf))
                res.write(b"".join(res_buf))
                req_buf.clear()
                res_buf.clear()
        req.write(b"".join(req_buf))
        res.write(b"".join(res_buf))
    return {"tickets": tickets, "results": n_results, "ids": ids}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root")
    p.add_argument("--tickets", type=int, default=100_000)
    p.add_argument("--in-progress", type=int, default=0)
    p.add_argument("--open", type=int, default=0)
    args = p.parse_args()
    out = generate(Path(args.root), args.tickets, args.in_progress, args.open)
    print(f"wrote {out['tickets']} tickets, {out['results']} results under {args.root}")


if __name__ == "__main__":
    main()
