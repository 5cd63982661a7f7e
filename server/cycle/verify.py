"""``opsledger verify receipt``: recompute a receipt's hash and check every ref."""
from __future__ import annotations

import json
from pathlib import Path

from server.common import rawpath
from server.common.canonical import report_sha256


def refs_of(obj) -> list[str]:
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


def verify_receipt(root: Path, path: Path) -> list[str]:
    """Problems found (empty = the receipt verifies)."""
    try:
        receipt = json.loads(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        return [f"{path}: cannot read receipt: {exc}"]
    if not isinstance(receipt, dict):
        return [f"{path}: not a JSON object"]
    problems = []
    claimed = (receipt.get("integrity") or {}).get("payload_sha256")
    actual = report_sha256(receipt)
    if claimed != actual:
        problems.append(f"integrity.payload_sha256 mismatch: receipt says {claimed}, content hashes to {actual}")
    for ref in refs_of(receipt):
        try:
            rawpath.check(root, ref, must_exist=True)
        except rawpath.RawPathError as exc:
            problems.append(f"ref {ref!r}: {exc}")
    return problems
