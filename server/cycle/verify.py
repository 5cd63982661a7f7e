"""``opsledger verify receipt``: recompute a receipt's hash, check every ref and the seed's key order."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from opsledger.server.artifacts import layout
from opsledger.server.artifacts.store import ArtifactStore
from opsledger.server.common import rawpath, strict_json
from opsledger.server.common.canonical import report_sha256
from opsledger.server.cycle.receipt import SEED_KEYS, SEED_STEP_KEYS, STEP_EXTRA_KEY


def refs_of(obj: Any) -> list[str]:
    """Every ref in a report: values of ``*_ref`` keys and of ``evidence_refs`` lists."""
    found: list[str] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key.endswith("_ref") and isinstance(value, str):
                found.append(value)
            elif key == "evidence_refs" and isinstance(value, list):
                found += [v for v in value if isinstance(v, str)]
            else:
                found += refs_of(value)
    elif isinstance(obj, list):
        for value in obj:
            found += refs_of(value)
    return found


def root_of(path: Path) -> Path | None:
    """The data root of a receipt file kept where the server writes receipts, else None."""
    cycle = layout.kind("cycle")
    here = Path(path).resolve().parent
    for folder in (cycle.latest_dir, cycle.snapshot_dir):
        depth = len(folder.split("/"))
        if here.parts[-depth:] == tuple(folder.split("/")):
            return here.parents[depth - 1]
    return None


def key_order_problems(receipt: dict) -> list[str]:
    """LIVE_CYCLE_RECEIPT_V1 keys in the seed's order; a step object may add ``error`` last."""
    problems = []
    if list(receipt) != list(SEED_KEYS):
        problems.append(f"keys {list(receipt)} are not the seed's keys in the seed's order {list(SEED_KEYS)}")
    for step, keys in SEED_STEP_KEYS.items():
        value = receipt.get(step)
        if not isinstance(value, dict):
            problems.append(f"{step}: not an object")
            continue
        got, allowed = list(value), [list(keys)]
        if step != "integrity":
            allowed.append(list(keys) + [STEP_EXTRA_KEY])
        if got not in allowed:
            problems.append(f"{step}: keys {got} are not the seed's {list(keys)}"
                            + (f" (optionally + {STEP_EXTRA_KEY!r})" if step != "integrity" else ""))
    return problems


def verify_receipt(artifacts: ArtifactStore, path: Path) -> list[str]:
    """Problems found (empty = the receipt verifies)."""
    try:
        receipt = strict_json.loads(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        return [f"{path}: cannot read receipt: {exc}"]
    if not isinstance(receipt, dict):
        return [f"{path}: not a JSON object"]
    problems = key_order_problems(receipt)
    claimed = (receipt.get("integrity") or {}).get("payload_sha256")
    actual = report_sha256(receipt)
    if claimed != actual:
        problems.append(f"integrity.payload_sha256 mismatch: receipt says {claimed}, content hashes to {actual}")
    for ref in refs_of(receipt):
        try:
            if artifacts.resolve(ref) is None:
                problems.append(f"ref {ref!r}: nothing is stored there")
        except rawpath.RawPathError as exc:
            problems.append(f"ref {ref!r}: {exc}")
    return problems
