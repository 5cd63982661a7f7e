"""The one home of durable file writes: atomic replace and new-file snapshots.

*Atomic replace*: a uniquely named temp file in the same folder, flush +
fsync, ``os.replace``, fsync the folder. *New file*: O_EXCL, never overwrite;
a name taken in the same second gets ``_2``, ``_3``, … before the suffix.
"""
from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fill(fd: int, path: Path, data: bytes) -> None:
    """Write and fsync a file just created with O_EXCL; on failure remove it."""
    try:
        write_all(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


# The temp files atomic_replace makes: a writer killed before its os.replace leaves one.
_TEMP_NAME = re.compile(r"\.(?P<target>.+)\.[0-9a-f]{32}\.tmp")


def temp_name(target: Path) -> str:
    return f".{target.name}.{uuid.uuid4().hex}.tmp"


def is_temp_name(name: str) -> bool:
    """True for a name ``atomic_replace`` gives its temp files (and nothing else)."""
    return _TEMP_NAME.fullmatch(name) is not None


def atomic_replace(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / temp_name(path)
    _fill(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), tmp, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def create_new(folder: Path, stem: str, suffix: str, data: bytes | Callable[[Path], bytes]) -> Path:
    """Write ``folder/stem[_N]suffix`` with O_EXCL; returns the path taken.

    ``data`` may be a function of the path taken, for a file that names itself.
    """
    folder.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        name = f"{stem}{suffix}" if n == 1 else f"{stem}_{n}{suffix}"
        path = folder / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            n += 1
            continue
        try:
            content = data(path) if callable(data) else data
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        _fill(fd, path, content)
        fsync_dir(folder)
        return path
