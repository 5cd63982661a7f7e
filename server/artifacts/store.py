"""``ArtifactStore``: the only way the server reads or writes artifacts.

Artifacts are the reports, bundles and receipts opsledger keeps under the
contract refs of ``layout`` (SPEC §1): the live cycle, ``bundle publish``,
``verify receipt``, the reaper and the evidence views go through this
protocol and never touch a file of the data root themselves. ``files``
implements it on the data root; another backend stores the same bytes
under the same refs.

Promises every implementation keeps (``tests/artifacts`` checks them):

- ``write_pair`` (SPEC §1.2) stores a new snapshot (never replacing one) and then
  replaces ``latest`` with the same bytes; a reader sees the old latest or
  the new one, never a part. ``render(snapshot_ref)`` makes the bytes once,
  so a report may name its own snapshot. Returns (latest ref, snapshot ref).
- ``read_latest``/``read`` give the stored bytes exactly, or None when
  nothing is stored; a ref that breaks the raw-path rules (SPEC §5) raises
  ``RawPathError`` naming the rule.
- ``snapshots`` lists a kind's snapshot refs newest first, only those that
  parse as a JSON object (one cut short by a crash is never listed).
- ``recover()`` (once, at start-up) removes what writers killed mid-write
  left behind (temp files, empty snapshots), never a write in progress
  elsewhere; it returns what it removed.
- ``resolve`` tells where a ref's bytes are kept (for messages), None when
  nothing is stored there, ``RawPathError`` for a bad ref.
- ``check_ref`` raises ``RawPathError`` for a ref that breaks the raw-path
  rules (its syntax, and an escape from the root where the backend has one)
  and asks nothing about what is stored: a ref named in a completion or a
  bundle need not exist (SPEC §5), so checking one costs no storage read.
- ``exclusive(name)`` is a lock held across processes (and replicas) for
  the ``with`` block; the live cycle holds ``exclusive("cycle")``.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol

from opsledger.server.common.rawpath import RawPathError

__all__ = ["ArtifactStore", "RawPathError", "Render"]

Render = Callable[[str], bytes]  # snapshot ref -> the bytes of the pair


class ArtifactStore(Protocol):
    def write_pair(self, kind: str, stamp: str, render: Render) -> tuple[str, str]: ...

    def read_latest(self, kind: str) -> bytes | None: ...

    def read(self, ref: str) -> bytes | None: ...

    def snapshots(self, kind: str, limit: int = 10) -> list[str]: ...

    def resolve(self, ref: str) -> str | None: ...

    def check_ref(self, ref: str) -> None: ...

    def exclusive(self, name: str) -> AbstractContextManager[None]: ...

    def recover(self) -> list[str]: ...
