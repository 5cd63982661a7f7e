"""The ArtifactStore promises, through the protocol only (every implementation)."""
from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from opsledger.server.artifacts import layout
from opsledger.server.artifacts.store import RawPathError
from tests.helpers import REPO

STAMP = "20260103_145000"


def body(n: int) -> bytes:
    return b'{\n  "n": %d,\n  "text": "\xc3\xa9t\xc3\xa9"\n}\n' % n


@pytest.mark.parametrize("kind", sorted(layout.KINDS))
def test_pair_is_byte_identical_under_the_contract_refs(artifacts, kind):
    seen = []

    def render(snapshot_ref: str) -> bytes:
        seen.append(snapshot_ref)
        return b'{"self": "%s"}\n' % snapshot_ref.encode()

    latest, snapshot = artifacts.write_pair(kind, STAMP, render)
    assert latest == layout.latest_ref(kind)
    assert snapshot == layout.snapshot_ref(kind, STAMP)
    assert seen == [snapshot]  # rendered once, knowing its own snapshot ref
    data = b'{"self": "%s"}\n' % snapshot.encode()
    assert artifacts.read(snapshot) == data
    assert artifacts.read(latest) == data
    assert artifacts.read_latest(kind) == data
    assert artifacts.snapshots(kind) == [snapshot]
    assert artifacts.resolve(latest) is not None and artifacts.resolve(snapshot) is not None


def test_nothing_stored_reads_as_none(artifacts):
    for kind in layout.KINDS:
        assert artifacts.read_latest(kind) is None
        assert artifacts.snapshots(kind) == []
        assert artifacts.resolve(layout.latest_ref(kind)) is None
    assert artifacts.read(layout.snapshot_ref("cycle", STAMP)) is None
    assert artifacts.read("reports/nothing/here.json") is None


def test_same_second_snapshots_are_numbered_and_never_replaced(artifacts):
    refs = [artifacts.write_pair("reco", STAMP, lambda _ref, n=n: body(n))[1] for n in range(1, 4)]
    later = artifacts.write_pair("reco", "20260103_145001", lambda _ref: body(4))[1]
    assert refs == [layout.snapshot_ref("reco", STAMP, n) for n in (1, 2, 3)]
    assert [artifacts.read(r) for r in refs] == [body(1), body(2), body(3)]
    assert artifacts.read_latest("reco") == body(4)
    # newest first: stamp, then N; the limit keeps the newest
    assert artifacts.snapshots("reco") == [later, refs[2], refs[1], refs[0]]
    assert artifacts.snapshots("reco", limit=2) == [later, refs[2]]
    assert artifacts.snapshots("summary") == []  # kinds do not mix


def test_ten_snapshots_in_one_second_sort_numerically(artifacts):
    for n in range(1, 12):
        artifacts.write_pair("cycle", STAMP, lambda _ref, n=n: body(n))
    newest = artifacts.snapshots("cycle", limit=3)
    assert newest == [layout.snapshot_ref("cycle", STAMP, n) for n in (11, 10, 9)]


def test_racing_writers_each_get_their_own_snapshot(artifacts):
    results: dict[int, tuple[str, str]] = {}

    def write(n: int) -> None:
        results[n] = artifacts.write_pair("preview", STAMP, lambda _ref: body(n))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snapshots = {snap for _latest, snap in results.values()}
    assert len(snapshots) == 8
    for n, (_latest, snap) in results.items():
        assert artifacts.read(snap) == body(n)
    assert artifacts.read_latest("preview") in {body(n) for n in range(8)}
    assert sorted(artifacts.snapshots("preview", limit=100)) == sorted(snapshots)


def test_a_render_that_fails_stores_nothing(artifacts):
    artifacts.write_pair("summary", STAMP, lambda _ref: body(1))

    def broken(_ref: str) -> bytes:
        raise RuntimeError("render failed")

    with pytest.raises(RuntimeError):
        artifacts.write_pair("summary", "20260103_145001", broken)
    assert artifacts.read_latest("summary") == body(1)
    assert artifacts.snapshots("summary") == [layout.snapshot_ref("summary", STAMP)]


@pytest.mark.parametrize("kind, stamp", [("nope", STAMP), ("reco", "2026-01-03T14:50"), ("reco", "../x")])
def test_unknown_kind_or_bad_stamp_is_refused_and_writes_nothing(artifacts, kind, stamp):
    with pytest.raises(ValueError, match="kind|stamp"):
        artifacts.write_pair(kind, stamp, lambda _ref: body(1))
    assert artifacts.snapshots("reco") == []
    with pytest.raises(ValueError, match="kind"):
        artifacts.read_latest("nope")


@pytest.mark.parametrize("ref", [
    "../outside.json", "reports/../../x.json", "/etc/passwd", "reports\\x.json", "http://h/x.json",
    "reports/%2e%2e/x.json", "reports/a\x00.json", "", "reports//x.json", "./reports/x.json", "a" * 513,
])
def test_refs_that_break_the_raw_path_rules_are_refused(artifacts, ref):
    with pytest.raises(RawPathError):
        artifacts.read(ref)
    with pytest.raises(RawPathError):
        artifacts.resolve(ref)
    with pytest.raises(RawPathError):
        artifacts.check_ref(ref)


def test_check_ref_asks_nothing_of_the_storage(artifacts):
    """A well-formed ref need not exist; checking one reads no storage (here: a store already closed)."""
    artifacts.write_pair("reco", STAMP, lambda _ref: body(1))
    refs = [layout.latest_ref("reco"), "reports/nothing/here.json", "state/tickets/ticket_results.jsonl:line9"]
    close = getattr(artifacts, "close", None)
    if close is not None:
        close()
    for ref in refs:
        assert artifacts.check_ref(ref) is None
    with pytest.raises(RawPathError):
        artifacts.check_ref("../outside.json")


def test_exclusive_holds_across_processes(impl, artifacts, tmp_path):
    """Another process's hold ends before this one's begins."""
    marker = tmp_path / "child-released"  # written by the child while it still holds the lock
    child = subprocess.Popen(
        [sys.executable, "-c", impl.source(artifacts) + (
            "import pathlib, sys\n"
            "with store.exclusive('cycle'):\n"
            "    print('held', flush=True)\n"
            "    sys.stdin.readline()\n"
            f"    pathlib.Path({str(marker)!r}).write_text('x')\n"
        )],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout.readline().strip() == "held"
        seen: list[bool] = []
        acquired = threading.Event()

        def take() -> None:
            with artifacts.exclusive("cycle"):
                seen.append(marker.exists())
                acquired.set()

        t = threading.Thread(target=take)
        t.start()
        acquired.wait(0.5)  # a lock that does not hold is taken here, before the child lets go
        child.stdin.write("\n")
        child.stdin.flush()
        t.join(30)
        assert seen == [True]
        assert child.wait(30) == 0
    finally:
        child.kill()
        child.wait()


def test_exclusive_is_released_on_exit_and_names_are_checked(artifacts):
    with artifacts.exclusive("cycle"):
        pass
    with artifacts.exclusive("cycle"):  # released on exit: taken again at once
        pass
    with pytest.raises(ValueError, match="lock name"), artifacts.exclusive("nope"):
        pass


def test_only_snapshots_that_parse_as_an_object_are_listed(artifacts):
    good = artifacts.write_pair("reaper", STAMP, lambda _ref: body(1))[1]
    for n, junk in enumerate((b"", b"{\n  \"cut\": ", b"[1, 2]\n", b"\xff\xfe"), start=1):
        artifacts.write_pair("reaper", f"20260103_14500{n}", lambda _ref, junk=junk: junk)
    assert artifacts.snapshots("reaper") == [good]


def test_recover_keeps_every_complete_pair(artifacts):
    assert artifacts.recover() == []  # a fresh store: nothing to sweep
    pairs = {kind: artifacts.write_pair(kind, STAMP, lambda _ref: body(7)) for kind in layout.KINDS}
    assert artifacts.recover() == []
    for kind, (latest, snapshot) in pairs.items():
        assert artifacts.read(latest) == artifacts.read(snapshot) == body(7)
        assert artifacts.snapshots(kind) == [snapshot]
