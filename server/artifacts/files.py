"""``ArtifactStore`` on the data root's files: today's paths, names and bytes.

A pair is a new snapshot file (O_EXCL, fsynced) and then ``latest`` by
atomic replace (``server.common.atomic``), byte-identical. Refs are checked
and resolved by ``server.common.rawpath`` (no escape from the root, also
not through a symlink). ``exclusive(name)`` is an ``flock`` on a lock file
under the root, so it holds across processes on this machine.
"""
from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from server.artifacts import layout
from server.artifacts.store import Render
from server.common import rawpath
from server.common.atomic import atomic_replace, create_new

# name -> lock file (relative to the root); a lock file holds no data.
LOCKS = {"cycle": "reports/live/cycle/.cycle.lock"}


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

        snap = create_new(self.root / k.snapshot_dir, f"{k.stem}_{stamp}", layout.SUFFIX, render_for)
        atomic_replace(self.root / k.latest_ref, written["data"])
        return k.latest_ref, snap.relative_to(self.root).as_posix()

    def read_latest(self, kind: str) -> bytes | None:
        return self.read(layout.latest_ref(kind))

    def read(self, ref: str) -> bytes | None:
        target = rawpath.resolve(self.root, ref)
        try:
            return target.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def snapshots(self, kind: str, limit: int = 10) -> list[str]:
        k = layout.kind(kind)
        folder = self.root / k.snapshot_dir
        try:
            names = os.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            return []
        keyed = [(key, name) for name in names if (key := layout.snapshot_order(kind, name)) is not None]
        keyed.sort(reverse=True)
        return [f"{k.snapshot_dir}/{name}" for _key, name in keyed[:limit]]

    def resolve(self, ref: str) -> str | None:
        target = rawpath.resolve(self.root, ref)
        return str(target) if target.is_file() else None

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
