"""The one home of RAW_PATH_ONLY (SPEC §5): checking and resolving refs.

A ref is a relative POSIX path from the data root: 1–512 chars, segments of
``[A-Za-z0-9._-]`` joined by ``/``, no empty, ``.`` or ``..`` segment, and
optionally ``:lineN`` (N ≥ 1) after a ``.jsonl`` path. Whatever it resolves
to (symlinks followed) must stay inside the root, also when a path is
swapped for a symlink between the check and the read (``read_inside``).
"""
from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

MAX_LEN = 512
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
_LINE_SUFFIX = re.compile(r"^(?P<path>.+\.jsonl):line(?P<n>[1-9][0-9]*)$")
_SCHEMES = ("json:", "file:", "http:", "https:")


class RawPathError(ValueError):
    """A ref breaks RAW_PATH_ONLY; the message says which rule."""


def split_line_suffix(ref: str) -> tuple[str, int | None]:
    match = _LINE_SUFFIX.match(ref)
    if match:
        return match.group("path"), int(match.group("n"))
    return ref, None


def line_ref(path: str, n: int) -> str:
    """The ref of line ``n`` (1-based) of a JSONL file."""
    return f"{path}:line{n}"


def check_syntax(ref: object) -> str:
    """Return the path part of a well-formed ref or raise RawPathError."""
    if not isinstance(ref, str):
        raise RawPathError("must be a string")
    if not 1 <= len(ref) <= MAX_LEN:
        raise RawPathError(f"must be 1-{MAX_LEN} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in ref):
        raise RawPathError("must not contain control characters")
    if any(c.isspace() for c in ref):
        raise RawPathError("must not contain whitespace")
    if ref.startswith("/"):
        raise RawPathError("must be relative (no leading '/')")
    if "\\" in ref:
        raise RawPathError("must use '/' only (no backslash)")
    if "://" in ref or ref.lower().startswith(_SCHEMES):
        raise RawPathError("must be a raw path, not a URL or scheme")
    if "%" in ref:
        raise RawPathError("must not be percent-encoded")
    path, _line = split_line_suffix(ref)
    if ":" in path:
        raise RawPathError("':' only in a ':lineN' suffix after a .jsonl path")
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise RawPathError("must not have empty, '.' or '..' segments")
        if not _SEGMENT.fullmatch(segment):
            raise RawPathError("segments may only use [A-Za-z0-9._-]")
    return path


def resolve(root: Path, ref: str) -> Path:
    """Check a ref and return its absolute path, refusing escapes via symlinks."""
    path = check_syntax(ref)
    base = root.resolve()
    target = (base / path).resolve()
    if not _inside(base, target):
        raise RawPathError("resolves outside the data root")
    return target



def _inside(base: Path, target: Path) -> bool:
    return target == base or base in target.parents


def read_inside(root: Path, ref: str) -> bytes | None:
    """The bytes of the regular file a ref names, or None when none is there.

    The file is opened (never following a last-component symlink, never
    blocking on a FIFO) and the real path of the opened descriptor is checked
    to be inside the root before a byte is read: a symlink swapped in after
    ``resolve`` cannot lead the read outside. Linux (``/proc/self/fd``).
    """
    target = resolve(root, ref)
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # became a symlink after resolve(): a swap under us
            raise RawPathError("resolves outside the data root") from None
        raise
    try:
        if not _inside(Path(root).resolve(), Path(os.readlink(f"/proc/self/fd/{fd}"))):
            raise RawPathError("resolves outside the data root")
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None  # a FIFO, device or folder is no stored artifact
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read()
    finally:
        os.close(fd)
