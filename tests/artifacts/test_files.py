"""The file implementation keeps today's paths, names and bytes exactly."""
from __future__ import annotations

import os

import pytest

from opsledger.server.artifacts import layout
from opsledger.server.artifacts.files import LOCKS, FileArtifacts
from opsledger.server.artifacts.store import RawPathError
from opsledger.server.common.atomic import create_new

STAMP = "20260103_145000"

# The contract's paths, written out (a change here is a change of the contract).
TODAY = {
    "bundle": ("state/strategy_bundle/latest/strategy_bundle_latest.json",
               "state/strategy_bundle/snapshots/strategy_bundle_20260103_145000.json"),
    "reco": ("reports/live/reco/latest/reco_latest.json", "reports/live/reco/snapshots/reco_20260103_145000.json"),
    "summary": ("reports/ops/summary/ops_summary_latest.json",
                "reports/ops/summary/snapshots/ops_summary_20260103_145000.json"),
    "preview": ("reports/ops/push/preview/preview_latest.json",
                "reports/ops/push/preview/snapshots/preview_20260103_145000.json"),
    "cycle": ("reports/live/cycle/latest/live_cycle_latest.json",
              "reports/live/cycle/snapshots/live_cycle_20260103_145000.json"),
    "reaper": ("reports/ops/tickets/reaper/latest/reaper_latest.json",
               "reports/ops/tickets/reaper/snapshots/reaper_20260103_145000.json"),
}


@pytest.mark.parametrize("kind", sorted(TODAY))
def test_files_land_at_todays_paths_byte_identical(tmp_path, kind):
    store = FileArtifacts(tmp_path)
    data = b'{\n  "a": 1\n}\n'
    assert store.write_pair(kind, STAMP, lambda _ref: data) == TODAY[kind]
    latest, snapshot = TODAY[kind]
    assert (tmp_path / latest).read_bytes() == data
    assert (tmp_path / snapshot).read_bytes() == data
    # nothing else: no temp file left beside latest, no other file in the folders
    assert sorted(os.listdir((tmp_path / latest).parent)) == sorted(
        [os.path.basename(latest)] + (["snapshots"] if kind in ("summary", "preview") else []))
    assert os.listdir((tmp_path / snapshot).parent) == [os.path.basename(snapshot)]


def test_snapshot_names_follow_the_new_file_rule(tmp_path):
    """layout names the n-th snapshot of a second as create_new does."""
    kind = layout.kind("cycle")
    taken = [create_new(tmp_path, f"{kind.stem}_{STAMP}", layout.SUFFIX, b"x").name for _ in range(3)]
    assert taken == [layout.snapshot_name("cycle", STAMP, n) for n in (1, 2, 3)]


def test_the_cycle_lock_file_is_where_it_was(tmp_path):
    store = FileArtifacts(tmp_path)
    with store.exclusive("cycle"):
        assert (tmp_path / "reports/live/cycle/.cycle.lock").is_file()
    assert LOCKS == {"cycle": "reports/live/cycle/.cycle.lock"}
    assert store.snapshots("cycle") == []  # the lock file is no snapshot


def test_foreign_files_in_a_snapshot_folder_are_not_listed(tmp_path):
    store = FileArtifacts(tmp_path)
    _latest, snap = store.write_pair("reco", STAMP, lambda _ref: b"{}")
    folder = tmp_path / "reports/live/reco/snapshots"
    for name in ("reco_notes.json", "reco_20260103_145000.json.tmp", ".reco_20260103_145001.json.x.tmp",
                 "summary_20260103_145002.json", "reco_20260103_145003_0.json"):
        (folder / name).write_bytes(b"{}")
    assert store.snapshots("reco") == [snap]


def test_a_symlink_out_of_the_root_is_refused(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "reports").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.json").write_bytes(b'{"secret": 1}')
    os.symlink(outside, root / "reports" / "link")
    store = FileArtifacts(root)
    with pytest.raises(RawPathError, match="outside the data root"):
        store.read("reports/link/secret.json")
    with pytest.raises(RawPathError, match="outside the data root"):
        store.resolve("reports/link/secret.json")


def test_a_folder_is_not_an_artifact(tmp_path):
    store = FileArtifacts(tmp_path)
    store.write_pair("reco", STAMP, lambda _ref: b"{}")
    assert store.read("reports/live/reco/snapshots") is None
    assert store.resolve("reports/live/reco/snapshots") is None
