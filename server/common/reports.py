"""The one home of report files: where each kind lives and how a pair is written.

A report is written as a snapshot (new file, never overwritten) and then as
``latest`` (atomic replace); the two are byte-identical.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from server.common.atomic import atomic_replace, create_new

# kind -> (folder of latest, latest file name, folder of snapshots, snapshot stem)
OUTPUTS = {
    "bundle": ("state/strategy_bundle/latest", "strategy_bundle_latest.json", "state/strategy_bundle/snapshots", "strategy_bundle"),
    "reco": ("reports/live/reco/latest", "reco_latest.json", "reports/live/reco/snapshots", "reco"),
    "summary": ("reports/ops/summary", "ops_summary_latest.json", "reports/ops/summary/snapshots", "ops_summary"),
    "preview": ("reports/ops/push/preview", "preview_latest.json", "reports/ops/push/preview/snapshots", "preview"),
    "cycle": ("reports/live/cycle/latest", "live_cycle_latest.json", "reports/live/cycle/snapshots", "live_cycle"),
    "reaper": ("reports/ops/tickets/reaper/latest", "reaper_latest.json", "reports/ops/tickets/reaper/snapshots", "reaper"),
}


def latest_ref(kind: str) -> str:
    folder, name, _snaps, _stem = OUTPUTS[kind]
    return f"{folder}/{name}"


def write_pair(root: Path, kind: str, stamp: str, render: Callable[[str], bytes]) -> tuple[str, str]:
    """Snapshot (O_EXCL) then latest (atomic replace), byte-identical.

    ``render(snapshot_ref)`` makes the bytes, so a report may name its own
    snapshot. Returns (latest ref, snapshot ref).
    """
    root = Path(root)
    _latest_dir, _name, snap_dir, stem = OUTPUTS[kind]
    written: dict[str, bytes] = {}

    def render_for(path: Path) -> bytes:
        written["data"] = render(path.relative_to(root).as_posix())
        return written["data"]

    snap = create_new(root / snap_dir, f"{stem}_{stamp}", ".json", render_for)
    atomic_replace(root / latest_ref(kind), written["data"])
    return latest_ref(kind), snap.relative_to(root).as_posix()


def snapshots(root: Path, kind: str, limit: int = 10) -> list[str]:
    """The newest snapshot refs of a kind, newest first (stamp, then _N)."""
    root = Path(root)
    _l, _n, snap_dir, stem = OUTPUTS[kind]
    folder = root / snap_dir
    if not folder.is_dir():
        return []

    def order(p: Path) -> tuple[str, int]:
        parts = p.stem[len(stem) + 1:].split("_")  # YYYYMMDD, HHMMSS[, N]
        n = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 1
        return "_".join(parts[:2]), n

    files = sorted(folder.glob(f"{stem}_*.json"), key=order, reverse=True)[:limit]
    return [p.relative_to(root).as_posix() for p in files]
