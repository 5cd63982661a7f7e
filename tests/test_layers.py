"""One home per idea, in the right layer: who may import whom (read from the source)."""
from __future__ import annotations

import ast
import re

import pytest

from tests.helpers import REPO

PURE_STEPS = ["server/cycle/bundle.py", "server/cycle/reco.py", "server/cycle/summary.py",
              "server/cycle/push.py", "server/cycle/receipt.py", "server/ledger/machine.py",
              "server/ledger/records.py", "server/ledger/validation.py", "server/artifacts/layout.py"]


def imports(rel: str) -> set[str]:
    tree = ast.parse((REPO / rel).read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def modules(folder: str) -> list[str]:
    return sorted(p.relative_to(REPO).as_posix() for p in (REPO / folder).rglob("*.py"))


@pytest.mark.parametrize("rel", modules("server/common"))
def test_common_is_the_bottom_layer(rel):
    above = [m for m in imports(rel) if m.startswith("opsledger.server.") and not m.startswith("opsledger.server.common")
             and m != "opsledger.server.errors"]
    assert above == []


@pytest.mark.parametrize("rel", PURE_STEPS)
def test_pure_modules_reach_no_store(rel):
    """Contract refs come from layout/records, never from a store or its files."""
    reached = [m for m in imports(rel)
               if m.startswith(("opsledger.server.ledger.jsonl", "opsledger.server.artifacts.files",
                                "opsledger.server.ledger.backend"))
               or m in ("fcntl", "os", "socket", "subprocess", "pathlib")]
    assert reached == []


@pytest.mark.parametrize("rel", modules("server/gateway"))
def test_the_gateway_speaks_grpc_only(rel):
    """The gateway maps HTTP onto the RPCs; the ledger's rules stay behind them."""
    inner = ("opsledger.server.ledger", "opsledger.server.cycle", "opsledger.server.artifacts")
    assert [m for m in imports(rel) if m.startswith(inner)] == []


def test_auth_reads_its_rules_from_the_api_not_the_gateway():
    assert [m for m in imports("server/interceptors.py") if m.startswith("opsledger.server.gateway")] == []
    assert "opsledger.server.api" in imports("server/app.py")


def _sources() -> dict[str, str]:
    return {rel: (REPO / rel).read_text(encoding="utf-8")
            for folder in ("server", "client") for rel in modules(folder)}


@pytest.mark.parametrize("idea, pattern, home", [
    ("the message-size limit", r"^\s*MAX_MESSAGE_BYTES\s*=", "client/limits.py"),
    ("unpacking google.rpc details", r"rpc_status\.from_call\(", "server/rpc_status.py"),
    ("parsing a contract timestamp", r"fromisoformat\(", "server/common/clock.py"),
    ("a Struct's integral numbers", r"def restore_integers\(", "server/common/struct_numbers.py"),
    ("reading the google.api.http options", r"annotations_pb2\.http\b", "server/api.py"),
])
def test_each_idea_is_written_once(idea, pattern, home):
    where = sorted(rel for rel, text in _sources().items() if re.search(pattern, text, re.M))
    assert where == [home], idea
