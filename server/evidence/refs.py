"""Which refs are evidence (SPEC §7.1, pure): a report file opsledger writes,
a ledger log, or one line of the results log. Everything else is an invalid ref.

The raw-path rules themselves (no ``..``, no ``\\``, no URL, no
percent-escape, no NUL, ...) live in ``opsledger.server.common.rawpath`` and where each
artifact kind lives in ``opsledger.server.artifacts.layout``; this module only narrows
valid raw paths to what opsledger writes.
"""
from __future__ import annotations

from dataclasses import dataclass

from opsledger.server.artifacts import layout
from opsledger.server.common import rawpath
from opsledger.server.ledger.records import REQUESTS_REF, RESULTS_REF

JSON_FILE = "JSON_FILE"
JSONL_LINE = "JSONL_LINE"
JSONL_FILE = "JSONL_FILE"

LEDGER_LOGS = (REQUESTS_REF, RESULTS_REF)  # in the order of LedgerBackend.line_counts()
LINE_LOGS = (RESULTS_REF,)  # logs whose lines are evidence (a result cites a transition)


class InvalidRef(ValueError):
    """The ref is not evidence; the message says which rule it breaks."""


@dataclass(frozen=True)
class EvidenceRef:
    ref: str
    kind: str  # JSON_FILE, JSONL_LINE or JSONL_FILE
    path: str  # the raw path, without any :lineN suffix
    line: int | None = None


def classify(ref: str) -> EvidenceRef:
    """The kind of evidence a ref names, or InvalidRef."""
    try:
        path = rawpath.check_syntax(ref)
    except rawpath.RawPathError as exc:
        raise InvalidRef(str(exc)) from None
    _path, line = rawpath.split_line_suffix(ref)
    if line is not None:
        if path not in LINE_LOGS:
            raise InvalidRef(f"':lineN' only after {' or '.join(LINE_LOGS)}")
        return EvidenceRef(ref, JSONL_LINE, path, line)
    if path in LEDGER_LOGS:
        return EvidenceRef(ref, JSONL_FILE, path)
    if layout.kind_of(path) is not None:
        return EvidenceRef(ref, JSON_FILE, path)
    raise InvalidRef("not a report, ledger log or ledger line that opsledger writes")
