"""Choosing the ledger backend (--store / OPSLEDGER_STORE) and the seam around the JSONL files."""
import ast
import os
import subprocess
from pathlib import Path

import pytest

from opsledger.server.ledger.backend import LedgerBackend
from opsledger.server.ledger.backends import check, make_backend
from opsledger.server.settings import SettingsError
from tests.helpers import REPO, opsledger_cmd


def test_default_is_jsonl_and_implements_the_protocol(tmp_path):
    backend = make_backend("", tmp_path).open()
    try:
        assert isinstance(backend, LedgerBackend)
        health = backend.health()
        assert (health.backend, health.writable, health.problem) == ("jsonl", True, None)
        assert health.location == str(tmp_path.resolve())
    finally:
        backend.close()


@pytest.mark.parametrize("spec", ["sqlite", "JSONL", "jsonl2"])
def test_an_unknown_backend_name_is_refused_naming_the_setting(spec):
    with pytest.raises(SettingsError) as info:
        check(spec)
    assert "--store / OPSLEDGER_STORE" in str(info.value) and repr(spec) in str(info.value)
    assert "jsonl" in str(info.value)  # says what would work


def test_an_unknown_url_scheme_is_refused_without_echoing_the_password():
    with pytest.raises(SettingsError) as info:
        check("mysql://admin:hunter2@db/ledger")
    assert "'mysql'" in str(info.value) and "hunter2" not in str(info.value)


@pytest.mark.parametrize("how", ["flag", "env"])
def test_serve_with_an_unknown_store_stops_with_one_line_and_writes_nothing(tmp_path, how):
    args = ["serve", "--root", str(tmp_path), "--grpc-addr", "127.0.0.1:0", "--no-http"]
    env = dict(os.environ)
    if how == "flag":
        args += ["--store", "nosuch"]
    else:
        env["OPSLEDGER_STORE"] = "nosuch"
    proc = subprocess.run(opsledger_cmd(*args), cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "--store / OPSLEDGER_STORE: unknown ledger backend 'nosuch'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "state").exists()  # nothing was opened or created


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_nothing_outside_the_jsonl_package_reaches_its_files_index_or_lock():
    # The only doors into server.ledger.jsonl: the backend factory, the fsck and checkpoint
    # commands (and the one start-up refusal they print: a lost log), and `opsledger
    # import` (it checks the JSONL files it moves with their own fsck).
    allowed = {REPO / "server/ledger/backends.py": {"opsledger.server.ledger.jsonl.store", "opsledger.server.ledger.jsonl.store.JsonlLedger"},  # noqa: E501
               REPO / "server/cli.py": {"opsledger.server.ledger.jsonl.fsck", "opsledger.server.ledger.jsonl.fsck.fsck",
                                        "opsledger.server.ledger.jsonl.tools", "opsledger.server.ledger.jsonl.tools.checkpoint_now",  # noqa: E501
                                        "opsledger.server.ledger.jsonl.checkpoint", "opsledger.server.ledger.jsonl.checkpoint.LostLog"},  # noqa: E501
               REPO / "server/ledger/postgres/transfer.py": {"opsledger.server.ledger.jsonl.fsck",
                                                            "opsledger.server.ledger.jsonl.fsck.fsck"}}
    package = REPO / "server/ledger/jsonl"
    offenders = []
    for path in sorted((REPO / "server").rglob("*.py")):
        if package in path.parents:
            continue
        text = path.read_text()
        reached = {n for n in _imports(path) if n.startswith("opsledger.server.ledger.jsonl")} - allowed.get(path, set())
        for needle in ("store.index", "store.lock", ".ledger.lock", "last_result_of", "commit_listeners",
                       "changed_elsewhere", "store.root"):
            if needle in text:
                offenders.append(f"{path.relative_to(REPO)}: {needle}")
        if reached:
            offenders.append(f"{path.relative_to(REPO)}: imports {sorted(reached)}")
        if "fcntl" in _imports(path) and path.parent.name == "ledger":
            offenders.append(f"{path.relative_to(REPO)}: imports fcntl")
    assert offenders == []
