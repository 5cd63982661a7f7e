"""Where each artifact kind lives (SPEC §1): contract refs and snapshot names. Pure.

Every implementation of ``ArtifactStore`` keeps an artifact under these refs
(relative POSIX paths from the data root), so a ref written into a report
means the same thing on every backend and in an export.

A kind has a *latest* ref (replaced on every write) and snapshots named
``<stem>_<YYYYMMDD_HHMMSS>[_N].json`` in its snapshot folder: the first of a
second has no ``_N``, later ones in the same second take ``_2``, ``_3``, …
Newest first means: stamp descending, then N descending.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    latest_dir: str
    latest_name: str
    snapshot_dir: str
    stem: str

    @property
    def latest_ref(self) -> str:
        return f"{self.latest_dir}/{self.latest_name}"


KINDS: dict[str, Kind] = {
    "bundle": Kind("state/strategy_bundle/latest", "strategy_bundle_latest.json", "state/strategy_bundle/snapshots",
                   "strategy_bundle"),
    "reco": Kind("reports/live/reco/latest", "reco_latest.json", "reports/live/reco/snapshots", "reco"),
    "summary": Kind("reports/ops/summary", "ops_summary_latest.json", "reports/ops/summary/snapshots", "ops_summary"),
    "preview": Kind("reports/ops/push/preview", "preview_latest.json", "reports/ops/push/preview/snapshots", "preview"),
    "cycle": Kind("reports/live/cycle/latest", "live_cycle_latest.json", "reports/live/cycle/snapshots", "live_cycle"),
    "reaper": Kind("reports/ops/tickets/reaper/latest", "reaper_latest.json", "reports/ops/tickets/reaper/snapshots", "reaper"),
}

SUFFIX = ".json"
_STAMP = re.compile(r"[0-9]{8}_[0-9]{6}")
_SNAPSHOT_NAME = re.compile(r"(?P<stamp>[0-9]{8}_[0-9]{6})(?:_(?P<n>[1-9][0-9]*))?\.json")


class UnknownKind(ValueError):
    """Not one of ``KINDS``."""


def kind(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise UnknownKind(f"artifact kind: must be one of {', '.join(KINDS)} (got {name!r})") from None


def latest_ref(name: str) -> str:
    return kind(name).latest_ref


def check_stamp(stamp: str) -> str:
    if not isinstance(stamp, str) or not _STAMP.fullmatch(stamp):
        raise ValueError(f"stamp: must be YYYYMMDD_HHMMSS (got {stamp!r})")
    return stamp


def snapshot_name(name: str, stamp: str, n: int = 1) -> str:
    """The file name of the n-th snapshot of a kind in one second (n = 1 has no suffix)."""
    stem = f"{kind(name).stem}_{check_stamp(stamp)}"
    return f"{stem}{SUFFIX}" if n == 1 else f"{stem}_{n}{SUFFIX}"


def snapshot_ref(name: str, stamp: str, n: int = 1) -> str:
    return f"{kind(name).snapshot_dir}/{snapshot_name(name, stamp, n)}"


def snapshot_order(name: str, file_name: str) -> tuple[str, int] | None:
    """Sort key (stamp, N) of a snapshot file name of this kind; None if it is not one."""
    stem = kind(name).stem + "_"
    if not file_name.startswith(stem):
        return None
    match = _SNAPSHOT_NAME.fullmatch(file_name[len(stem):])
    if match is None:
        return None
    return match.group("stamp"), int(match.group("n") or 1)


def kind_of(ref: str) -> str | None:
    """The kind whose latest ref or snapshot ``ref`` is, else None."""
    for name, k in KINDS.items():
        if ref == k.latest_ref:
            return name
        folder, _, file_name = ref.rpartition("/")
        if folder == k.snapshot_dir and snapshot_order(name, file_name) is not None:
            return name
    return None
