"""A writer killed mid-pair (SIGKILL, for real) leaves a temp file or an empty
snapshot: never listed, swept at the next start-up, and a write still in
progress in another process is never swept."""
import json
import signal
import subprocess
import sys
import textwrap
import threading
import time

from opsledger.client.ledger_client import OpsledgerClient
from opsledger.server.artifacts import layout
from opsledger.server.artifacts.files import FileArtifacts
from opsledger.v1 import cycle_pb2
from tests.cycle.conftest import write_bundle
from tests.helpers import REPO, ServerProcess

STAMP = "20991231_235959"  # newer than any real run: first in the list if listed


def writer(root, kind: str, block: str) -> subprocess.Popen:
    """A process writing one pair of ``kind`` that stops where ``block`` says, until told to go on."""
    code = textwrap.dedent(f"""
        import os, sys
        from opsledger.server.artifacts.files import FileArtifacts
        go = lambda: sys.stdin.readline()
        if {block!r} == "replace":
            real = os.replace
            def slow(a, b):
                print("blocked", flush=True); go(); real(a, b)
            os.replace = slow
        def render(ref):
            if {block!r} == "render":
                print("blocked", flush=True); go()
            return b'{{"ref": "%s"}}\\n' % ref.encode()
        FileArtifacts({str(root)!r}).write_pair({kind!r}, {STAMP!r}, render)
        print("done", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "blocked"
    return proc


def kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def debris(root):
    temps = [p for k in layout.KINDS.values() if (root / k.latest_dir).is_dir()
             for p in (root / k.latest_dir).iterdir() if p.name.endswith(".tmp")]
    empty = [p for k in layout.KINDS.values() if (root / k.snapshot_dir).is_dir()
             for p in (root / k.snapshot_dir).iterdir() if p.stat().st_size == 0]
    return temps, empty


def test_a_killed_cycle_leaves_nothing_listed_and_start_up_sweeps(root):
    root.mkdir(parents=True)
    write_bundle(root)
    srv = ServerProcess(root, http=False)
    try:
        with OpsledgerClient(srv.target, retries=0) as c:
            good = c.run_cycle().receipt.snapshot_ref
            kill(writer(root, "cycle", "render"))  # killed after the snapshot's create, before its bytes
            kill(writer(root, "reco", "replace"))  # killed after the temp file, before the replace
            temps, empty = debris(root)
            assert len(temps) == 1 and [p.name for p in empty] == [f"live_cycle_{STAMP}.json"]
            # While the server runs: the empty snapshot is the newest name, yet never listed.
            assert list(c.latest_cycle().snapshots) == [good]
    finally:
        assert srv.terminate() == 0
    srv = ServerProcess(root, http=False)  # start-up sweeps
    try:
        assert debris(root) == ([], [])
        assert "left by a write that was cut short" in srv.log()
        with OpsledgerClient(srv.target, retries=0) as c:
            latest = c.latest_cycle()
            assert list(latest.snapshots) == [good] and latest.rows[0].snapshot_ref == good
            assert c.run_cycle().receipt.result == cycle_pb2.CycleResult.OK  # and cycles go on
    finally:
        assert srv.terminate() == 0


def test_recovery_waits_for_a_write_in_progress_and_keeps_it(root):
    root.mkdir(parents=True)
    artifacts = FileArtifacts(root)
    busy = writer(root, "summary", "render")  # another process, mid-write: its snapshot is still empty
    removed = []
    sweep = threading.Thread(target=lambda: removed.extend(artifacts.recover()))
    sweep.start()
    time.sleep(0.5)
    assert sweep.is_alive()  # waiting for the writer, not removing its empty snapshot
    busy.stdin.write("\n")
    busy.stdin.flush()
    assert busy.stdout.readline().strip() == "done" and busy.wait(10) == 0
    sweep.join(10)
    assert removed == []
    [ref] = artifacts.snapshots("summary")
    assert json.loads(artifacts.read(ref)) == {"ref": ref}
