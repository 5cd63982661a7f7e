"""The index checkpoint: the derived index saved next to the logs, so start-up
loads it and replays only what was appended after it (a snapshot + log tail,
as etcd, Kafka and Redis do).

File ``state/tickets/index.checkpoint`` (written atomically: temp file,
fsync, rename, fsync of the folder)::

    MAGIC | header length (8 bytes, little-endian) | header (JSON) | arrays | sha256 of all before

The header names the format version, the byte order, and for each log what
the checkpoint covers and how to recognise that log again: its size and
line count at the cut, its device and inode, and the sha256 of its first
4 KiB and of the 4 KiB before the cut. The arrays are the index's columns,
its sorted views and one CRC-32 per covered log line (what the background
scrub re-checks the covered bytes against).

Trust rules at start-up (``check_logs``):

* no file, a bad checksum (torn, damaged), another version or byte order:
  ``BadCheckpoint`` - the caller warns and replays the logs in full;
* a log shorter than what the checkpoint covered, or whose bytes at its
  head or at the cut differ (another file in its place): ``LostLog`` - this
  is not a bad checkpoint but lost history, and start-up stops;
* a log with the same bytes under another inode (restored from a backup,
  copied to a new disk) is accepted, with a note.
"""
from __future__ import annotations

import hashlib
import os
import sys
import zlib
from array import array
from dataclasses import asdict, dataclass

import orjson

from opsledger.server.errors import StartupRefused

MAGIC = b"OPSLEDGER-INDEX-CHECKPOINT\n"
VERSION = 1
CHECKPOINT = "state/tickets/index.checkpoint"
EDGE = 4096  # bytes hashed at a log's head and before the cut
_DIGEST = 32


class BadCheckpoint(Exception):
    """Missing, torn, damaged or of another version: ignored, full replay."""


class LostLog(StartupRefused):
    """A log no longer holds what a valid checkpoint covered: start-up stops."""

    fix = ("if the loss is known and accepted, start once with --accept-log-loss to go on with the logs as they "
           "are; otherwise restore the log from a backup")

    def __init__(self, file: str, reason: str, covered: int, size: int, line: int | None = None,
                 rewritten: bool = False) -> None:
        self.file, self.reason, self.covered, self.size, self.line = file, reason, covered, size, line
        self.rewritten = rewritten  # changed, not only cut short
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {reason} (the index checkpoint covered {covered} bytes; "
                         f"the file has {size} bytes now)")


@dataclass
class LogMark:
    """What a checkpoint covers of one log, and how to recognise that log."""

    size: int
    lines: int
    dev: int
    ino: int
    head_sha256: str
    cut_sha256: str


def _edges(fd: int, size: int) -> tuple[str, str]:
    n = min(EDGE, size)
    head = hashlib.sha256(os.pread(fd, n, 0)).hexdigest()
    cut = hashlib.sha256(os.pread(fd, n, size - n)).hexdigest()
    return head, cut


def mark(fd: int, size: int, lines: int) -> LogMark:
    st = os.fstat(fd)
    head, cut = _edges(fd, size)
    return LogMark(size, lines, st.st_dev, st.st_ino, head, cut)


def encode(logs: dict[str, LogMark], index_meta: dict, arrays: dict[str, array], anomalies: list[dict],
           created_at: str) -> bytes:
    header = {
        "version": VERSION,
        "byteorder": sys.byteorder,
        "created_at": created_at,
        "logs": {rel: asdict(m) for rel, m in logs.items()},
        "index": index_meta,
        "anomalies": anomalies,
        "arrays": [[name, a.typecode, a.itemsize, len(a)] for name, a in arrays.items()],
    }
    head = orjson.dumps(header)
    h = hashlib.sha256()
    parts = [MAGIC, len(head).to_bytes(8, "little"), head] + [a.tobytes() for a in arrays.values()]
    for p in parts:
        h.update(p)
    return b"".join(parts) + h.digest()


def decode(data: bytes) -> tuple[dict, dict[str, array]]:
    """(header, arrays) of a checkpoint, or ``BadCheckpoint`` saying what is wrong."""
    if not data.startswith(MAGIC):
        raise BadCheckpoint("not an index checkpoint (no magic line)")
    view = memoryview(data)
    if len(data) < len(MAGIC) + 8 + _DIGEST or hashlib.sha256(view[:-_DIGEST]).digest() != data[-_DIGEST:]:
        raise BadCheckpoint("checksum mismatch (torn or damaged)")
    at = len(MAGIC)
    size = int.from_bytes(data[at:at + 8], "little")
    at += 8
    try:
        header = orjson.loads(view[at:at + size])
    except orjson.JSONDecodeError as exc:
        raise BadCheckpoint(f"unreadable header ({exc})") from None
    at += size
    if header.get("version") != VERSION:
        raise BadCheckpoint(f"format version {header.get('version')!r}; this server reads version {VERSION}")
    if header.get("byteorder") != sys.byteorder:
        raise BadCheckpoint(f"written on a {header.get('byteorder')}-endian machine")
    arrays: dict[str, array] = {}
    for name, typecode, itemsize, count in header["arrays"]:
        a = array(typecode)
        if a.itemsize != itemsize:
            raise BadCheckpoint(f"array {name}: item size {itemsize}, here {a.itemsize}")
        end = at + itemsize * count
        if end > len(data) - _DIGEST:
            raise BadCheckpoint(f"array {name} runs past the end")
        a.frombytes(view[at:end])
        arrays[name] = a
        at = end
    if at != len(data) - _DIGEST:
        raise BadCheckpoint("trailing bytes after the arrays")
    return header, arrays


def read(path) -> tuple[dict, dict[str, array]]:
    try:
        data = open(path, "rb").read()
    except FileNotFoundError:
        raise BadCheckpoint("none written yet") from None
    except OSError as exc:
        raise BadCheckpoint(f"unreadable ({exc.strerror})") from None
    return decode(data)


def first_changed_line(fd: int, size: int, crcs: array) -> tuple[int, bool] | None:
    """The first of the covered lines (in the first ``size`` bytes, CRC-32 each in
    ``crcs``) that is not there as it was: (1-based line, True when the file
    ends before it, False when its bytes differ); None when all match."""
    pos, n, pending = 0, 0, b""
    while pos < size:
        chunk = os.pread(fd, min(1 << 20, size - pos), pos)
        if not chunk:
            return n + 1, True
        pos += len(chunk)
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for line in lines:
            if n >= len(crcs) or zlib.crc32(line) != crcs[n]:
                return n + 1, False
            n += 1
    if n < len(crcs):
        # the covered lines ran out: lost when the file is shorter, else a line now runs past the cut
        return n + 1, os.fstat(fd).st_size < size
    return (n + 1, False) if pending else None


def check_logs(header: dict, fds: dict[str, int], crcs: dict[str, array]) -> list[str]:
    """Do the logs (open as ``fds``, by relative name) still hold what the checkpoint
    covered? Raises ``LostLog``; returns notes (a log copied to another inode)."""
    notes = []
    for rel, m in header["logs"].items():
        m = LogMark(**m)
        st = os.fstat(fds[rel])
        if st.st_size < m.size or _edges(fds[rel], m.size) != (m.head_sha256, m.cut_sha256):
            found = first_changed_line(fds[rel], m.size, crcs[rel])
            line, ended = found if found is not None else (None, False)
            if ended or line is None:
                raise LostLog(rel, "shorter than what the index checkpoint covered: covered lines were lost",
                              m.size, st.st_size, line)
            raise LostLog(rel, "this line is not what the index checkpoint covered (the file was rewritten, "
                               "or another file is in its place)", m.size, st.st_size, line, rewritten=True)
        if (st.st_dev, st.st_ino) != (m.dev, m.ino):
            notes.append(f"{rel} is another inode than when the checkpoint was written "
                         f"(restored or copied); its covered bytes match")
    return notes
