"""fsck: read both logs, report every anomaly, change nothing.

Unlike start-up (which stops at the first corrupt line), fsck keeps going
and lists each finding with file, line and reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from server.ledger import records
from server.ledger.jsonl import replay
from server.ledger.jsonl.index import LedgerIndex
from server.ledger.jsonl.store import REQUESTS, RESULTS


@dataclass
class Finding:
    file: str
    line: int
    reason: str
    severity: str = "error"  # "error" fails fsck; "note" is information

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{self.severity.upper()} {where}: {self.reason}"


def _lines(path: Path):
    """(line number, offset, bytes without newline, had newline)."""
    offset = 0
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            has_nl = raw.endswith(b"\n")
            yield n, offset, raw[:-1] if has_nl else raw, has_nl
            offset += len(raw)


def fsck(root: Path) -> list[Finding]:
    root = Path(root)
    findings: list[Finding] = []
    index = LedgerIndex()
    requested_at: dict[str, int] = {}
    for rel, is_results in ((REQUESTS, False), (RESULTS, True)):
        path = root / rel
        if not path.exists():
            continue
        if not path.is_file():
            kind = "a folder" if path.is_dir() else "not a regular file"
            findings.append(Finding(rel, 0, f"is {kind}, not a log: start-up refuses it; move it away"))
            continue
        try:
            path.open("rb").close()
        except OSError as exc:
            findings.append(Finding(rel, 0, f"cannot be read ({exc.strerror}): fix its permissions"))
            continue
        for n, offset, line, has_nl in _lines(path):
            if not has_nl:
                findings.append(Finding(rel, n, "torn last line (no newline); start-up will move it aside"))
                continue
            apply = replay.apply_result_line if is_results else replay.apply_request_line
            try:
                rec, epoch, reason = apply(index, line, offset)
            except records.LineError as exc:
                findings.append(Finding(rel, n, f"not a record: {exc}"))
                continue
            if reason:
                findings.append(Finding(rel, n, reason))
            elif not is_results:
                requested_at[rec["request_id"]] = epoch
            elif epoch < requested_at[rec["request_id"]]:
                findings.append(Finding(rel, n, "processed_at is earlier than the request's requested_at", "note"))
        for aside in sorted(path.parent.glob(path.name + ".torn-*")):
            findings.append(Finding(aside.relative_to(root).as_posix(), 0, "torn tail moved aside by an earlier start-up", "note"))
    return findings
