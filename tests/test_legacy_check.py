"""The legacy cron check (examples/legacy_cycle_check.sh, shown in the README)
against a fresh `make run`: real make, real server, real curl and python3."""
import json
import os
import re
import signal
import subprocess
import time

import pytest

from tests.helpers import REPO, ServerProcess

SCRIPT = REPO / "examples" / "legacy_cycle_check.sh"


def check(base: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT)], env=dict(os.environ, OPSLEDGER_URL=base),
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def make_run(tmp_path):
    """`make run` on an empty data root, every port chosen by the kernel (port 0)."""
    root = tmp_path / "root"
    root.mkdir()
    ready = tmp_path / "ready.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE") and k != "MFLAGS"}
    env.update(OPSLEDGER_ROOT=str(root), OPSLEDGER_GRPC_ADDR="127.0.0.1:0", OPSLEDGER_HTTP_ADDR="127.0.0.1:0",
               OPSLEDGER_READY_FILE=str(ready))
    log = open(tmp_path / "make-run.log", "wb")
    proc = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not ready.exists():
            assert proc.poll() is None, (tmp_path / "make-run.log").read_text()
            assert time.monotonic() < deadline, "make run did not become ready"
            time.sleep(0.1)
        yield root, f"http://127.0.0.1:{json.loads(ready.read_text())['http_port']}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # make and its server: the group this test started
        proc.wait(60)
        log.close()


def test_the_cron_check_passes_against_a_fresh_make_run(make_run):
    root, base = make_run
    out = check(base)
    assert out.returncode == 0, out.stdout + out.stderr
    ok, cycle_id, snapshot_ref = out.stdout.split()
    assert ok == "OK" and "OK/COMPLETED" in out.stderr and "push=CONSOLE_SIMULATED" in out.stderr
    stored = json.loads((root / snapshot_ref).read_bytes())
    assert stored["cycle_id"] == cycle_id and stored["result"] == "OK"
    snapshots = list((root / snapshot_ref).parent.glob("*.json"))
    assert len(snapshots) == 1  # the check ran exactly one cycle


def test_the_cron_check_fails_loudly(root, tmp_path):
    # Nothing listening: curl fails, the script exits non-zero.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    dead = check(closed)
    assert dead.returncode != 0 and "OK" not in dead.stdout
    # No bundle published: the cycle runs fail-closed (FAILED), so the check fails and says why.
    srv = ServerProcess(root)
    try:
        failed = check(srv.http_base)
    finally:
        assert srv.terminate() == 0
    assert failed.returncode != 0 and "result FAILED (BUNDLE_FAIL)" in failed.stderr, failed.stderr


def test_the_readme_shows_the_check_as_it_runs():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", readme, re.S)
    assert SCRIPT.read_text(encoding="utf-8") in blocks
