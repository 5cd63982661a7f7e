import json
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from opsledger.server.artifacts.files import FileArtifacts
from opsledger.server.common.canonical import pretty
from opsledger.server.common.clock import Clock, iso
from opsledger.server.cycle.bundle import LATEST_REF, make_bundle
from opsledger.server.cycle.runner import CycleRunner

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = json.loads((REPO / "examples" / "strategy_example.json").read_text(encoding="utf-8"))


def strategy(**over):
    s = json.loads(json.dumps(EXAMPLE))
    s.update(over)
    return s


def write_bundle(root: Path, strat: dict | None = None, age_s: float = 60, key: bytes | None = None,
                 tamper=None) -> dict:
    created = Clock().now() - timedelta(seconds=age_s)
    bundle = make_bundle(strat or strategy(), iso(created), str(uuid.uuid4()), key,
                         {"pc_host": "pc", "git_commit": None, "git_branch": None}, [])
    if tamper:
        tamper(bundle)
    path = root / LATEST_REF
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pretty(bundle))
    return bundle


def no_ledger(_now):
    return {"OPEN": 1, "IN_PROGRESS": 2, "DONE": 3, "FAILED": 4}, {"done": 3, "failed": 4, "stale_in_progress": 0}


@pytest.fixture
def runner(root):
    root.mkdir(parents=True, exist_ok=True)
    printed = []
    r = CycleRunner(FileArtifacts(root), no_ledger, console=printed.append)
    r.printed = printed
    return r
