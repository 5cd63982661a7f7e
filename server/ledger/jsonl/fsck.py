"""fsck: read both logs, report every anomaly, change nothing.

Unlike start-up (which stops at the first corrupt line), fsck keeps going
and lists each finding with file, line and reason.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from opsledger.server.ledger import records
from opsledger.server.ledger.jsonl import checkpoint, replay
from opsledger.server.ledger.jsonl.checkpoint import CHECKPOINT, BadCheckpoint, LostLog
from opsledger.server.ledger.jsonl.index import LedgerIndex, restore
from opsledger.server.ledger.jsonl.store import REQUESTS, RESULTS


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


def fsck(root: Path, with_status: bool = False) -> list[Finding]:
    """Every problem found; ``with_status`` adds notes on the index checkpoint's state."""
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
            findings.append(Finding(aside.relative_to(root).as_posix(), 0, "torn tail moved aside by an earlier start-up",
                                    "note"))
    return findings + checkpoint_findings(root, with_status)


def checkpoint_findings(root: Path, with_status: bool = False) -> list[Finding]:
    """The index checkpoint's state, and whether the logs still hold what it covered
    (a lost or replaced log is an error: start-up would stop on it)."""
    path = root / CHECKPOINT
    out = [Finding(p.relative_to(root).as_posix(), 0, "index checkpoint set aside by an earlier start-up or scrub",
                   "note") for p in sorted(path.parent.glob(path.name + ".*"))]
    try:
        header, arrays = checkpoint.read(path)
    except BadCheckpoint as exc:
        if not path.exists():
            return out + ([Finding(CHECKPOINT, 0, "none yet: the next start replays the logs in full", "note")]
                          if with_status else [])
        return out + [Finding(CHECKPOINT, 0, f"not usable ({exc}); the next start replays the logs in full", "note")]
    fds: dict[str, int] = {}
    try:
        for rel, mark in header["logs"].items():
            try:
                fds[rel] = os.open(root / rel, os.O_RDONLY)
            except FileNotFoundError:
                if mark["size"] > 0:
                    return out + [Finding(rel, 0, str(LostLog(rel, "missing", mark["size"], 0)))]
                continue
        crcs = {rel: arrays[f"crc.{rel}"] for rel in header["logs"]}
        try:
            notes = checkpoint.check_logs(header, fds, crcs) if len(fds) == len(header["logs"]) else []
        except LostLog as exc:
            return out + [Finding(exc.file, exc.line or 0, str(exc))]
        for rel, fd in fds.items():  # every covered line, not only the edges (fsck reads everything)
            found = checkpoint.first_changed_line(fd, header["logs"][rel]["size"], crcs[rel])
            if found is not None:
                out.append(Finding(rel, found[0], "not what the index checkpoint covered (changed in place)"))
    finally:
        for fd in fds.values():
            os.close(fd)
    try:
        restore(header["index"], arrays)
    except (KeyError, TypeError, ValueError) as exc:
        return out + [Finding(CHECKPOINT, 0, f"not usable (inconsistent: {exc}); the next start replays the logs "
                                             "in full", "note")]
    if not with_status:
        return out
    covers = ", ".join(f"{rel} {m['lines']} lines / {m['size']} bytes" for rel, m in header["logs"].items())
    out.append(Finding(CHECKPOINT, 0, f"valid (version {header['version']}, written {header['created_at']}, "
                                      f"{header['index']['request_count']} tickets): covers {covers}", "note"))
    return out + [Finding(CHECKPOINT, 0, n, "note") for n in notes]
