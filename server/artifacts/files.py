"""``ArtifactStore`` on the data root's files: today's paths, names and bytes.

A pair is a new snapshot file (O_EXCL, fsynced) and then ``latest`` by
atomic replace (``opsledger.server.common.atomic``), byte-identical. Refs are checked
and resolved by ``opsledger.server.common.rawpath`` (no escape from the root, also
not through a symlink). ``exclusive(name)`` is an ``flock`` on a lock file
under the root, so it holds across processes on this machine.

A writer killed mid-pair leaves a temp file (before its replace) or an
empty snapshot (between create and write). Every ``write_pair`` holds the
writes lock shared; ``recover`` (start-up) takes it exclusively, so it
removes only what dead writers left, never a write in progress in another
process. ``snapshots`` lists only files that parse as a JSON object.
"""
from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from opsledger.server.artifacts import layout
from opsledger.server.artifacts.store import Render
from opsledger.server.common import rawpath
from opsledger.server.common.atomic import atomic_replace, create_new, is_temp_name

log = logging.getLogger("opsledger.artifacts")

# name -> lock file (relative to the root); a lock file holds no data.
LOCKS = {"cycle": "reports/live/cycle/.cycle.lock"}
WRITES_LOCK = "reports/.writes.lock"  # shared by every write_pair, exclusive for recover()


def parses(data: bytes) -> bool:
    """A stored report is a JSON object; anything else was cut short."""
    try:
        return isinstance(orjson.loads(data), dict)
    except orjson.JSONDecodeError:
        return False


class FileArtifacts:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"FileArtifacts({str(self.root)!r})"

    def write_pair(self, kind: str, stamp: str, render: Render) -> tuple[str, str]:
        k = layout.kind(kind)
        layout.check_stamp(stamp)
        written: dict[str, bytes] = {}

        def render_for(path: Path) -> bytes:
            written["data"] = render(path.relative_to(self.root).as_posix())
            return written["data"]

        with self._writes_lock(fcntl.LOCK_SH):
            snap = create_new(self.root / k.snapshot_dir, f"{k.stem}_{stamp}", layout.SUFFIX, render_for)
            atomic_replace(self.root / k.latest_ref, written["data"])
        return k.latest_ref, snap.relative_to(self.root).as_posix()

    @contextmanager
    def _writes_lock(self, how: int) -> Iterator[None]:
        path = self.root / WRITES_LOCK
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # an fd per holder: flock is per open file
        try:
            fcntl.flock(fd, how)
            yield
        finally:
            os.close(fd)

    def recover(self) -> list[str]:
        """Remove what writers killed mid-write left: temp files of latest
        replaces and empty snapshots. Returns their paths (relative)."""
        removed: list[str] = []
        if not any((self.root / d).is_dir() for k in layout.KINDS.values() for d in (k.latest_dir, k.snapshot_dir)):
            return removed  # nothing was ever written: nothing to sweep, nothing to create
        with self._writes_lock(fcntl.LOCK_EX):
            for k in layout.KINDS.values():
                for folder, is_debris in ((k.latest_dir, lambda p: is_temp_name(p.name)),
                                          (k.snapshot_dir, _empty_snapshot)):
                    try:
                        entries = list((self.root / folder).iterdir())
                    except (FileNotFoundError, NotADirectoryError):
                        continue
                    for path in entries:
                        if is_debris(path):
                            path.unlink(missing_ok=True)
                            removed.append(path.relative_to(self.root).as_posix())
        for rel in removed:
            log.warning("removed %s, left by a write that was cut short", rel)
        return removed

    def read_latest(self, kind: str) -> bytes | None:
        return self.read(layout.latest_ref(kind))

    def read(self, ref: str) -> bytes | None:
        return rawpath.read_inside(self.root, ref)

    def snapshots(self, kind: str, limit: int = 10) -> list[str]:
        k = layout.kind(kind)
        folder = self.root / k.snapshot_dir
        try:
            names = os.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            return []
        keyed = [(key, name) for name in names if (key := layout.snapshot_order(kind, name)) is not None]
        keyed.sort(reverse=True)
        listed: list[str] = []
        for _key, name in keyed:
            if len(listed) >= limit:
                break
            ref = f"{k.snapshot_dir}/{name}"
            data = self.read(ref)
            if data is not None and parses(data):  # a snapshot cut short is never listed
                listed.append(ref)
        return listed

    def resolve(self, ref: str) -> str | None:
        target = rawpath.resolve(self.root, ref)
        return str(target) if target.is_file() else None

    def check_ref(self, ref: str) -> None:
        rawpath.resolve(self.root, ref)  # syntax, and no symlink out of the root

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        try:
            rel = LOCKS[name]
        except KeyError:
            raise ValueError(f"lock name: must be one of {', '.join(LOCKS)} (got {name!r})") from None
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock


def _empty_snapshot(path: Path) -> bool:
    try:
        return path.suffix == layout.SUFFIX and path.is_file() and path.stat().st_size == 0
    except OSError:
        return False
