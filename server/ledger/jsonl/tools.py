"""Offline tools on the JSONL ledger for the CLI (fsck lives in fsck.py)."""
from __future__ import annotations

from pathlib import Path

from opsledger.server.ledger.jsonl.store import JsonlLedger


def checkpoint_now(root: Path) -> str:
    """Write an index checkpoint of ``root`` now; returns what it covers, in words.

    Safe while a server runs on the same root: the ledger is multi-process
    (this process reads the logs under the same lock, from the last
    checkpoint and its tail, and writes what it read)."""
    store = JsonlLedger(Path(root), scrub=False).open()
    try:
        marks = store.write_checkpoint()
        tickets = store.index.request_count
    finally:
        store.close(checkpoint=False)
    covers = ", ".join(f"{rel} {m['lines']} lines / {m['size']} bytes" for rel, m in marks.items())
    return f"{tickets} tickets; covers {covers}"
