"""Artifacts have one home: no server module outside the artifact store names
a report path or takes a file lock; the ledger's files stay in its backend."""
from __future__ import annotations

import re

from tests.helpers import REPO

SERVER = REPO / "server"
# fcntl: the artifact store's file implementation and the JSONL ledger's own files
LOCKERS = ("server/artifacts/files.py", "server/ledger/jsonl/")
REPORT_PATH = re.compile(r"""["'](?:reports|state/strategy_bundle)/""")


def modules():
    for path in sorted(SERVER.rglob("*.py")):
        yield path.relative_to(REPO).as_posix(), path.read_text(encoding="utf-8")


def test_only_the_stores_lock_files():
    users = [rel for rel, text in modules() if re.search(r"^\s*(import fcntl|from fcntl )", text, re.M)]
    assert users, "the file stores lock with fcntl"
    assert [rel for rel in users if not rel.startswith(LOCKERS)] == []


def test_report_paths_are_written_down_once():
    named = [rel for rel, text in modules() if REPORT_PATH.search(text)]
    assert named == ["server/artifacts/files.py", "server/artifacts/layout.py"]
