"""``ArtifactStore`` in PostgreSQL: the same refs and bytes as the files, for every replica.

Rows of the ``artifacts`` table, keyed by contract ref, hold the exact bytes
and their sha256. A pair (a new snapshot, then ``latest`` with the same
bytes) is one transaction, so a reader sees the old pair or the new one.
Snapshot names are chosen under a transaction-level advisory lock (two
replicas in the same second get ``_2``, never the same name).

``exclusive(name)`` is a session advisory lock held by a connection of its
own for the ``with`` block: it holds across replicas. Every pair written
while it is held first checks, in the same transaction, that the lock's
session still holds it; if that connection died (and the lock with it) the
write is refused: a cycle that lost its lock fails closed instead of
writing a receipt beside another replica's cycle.
"""
from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg_pool import ConnectionPool

from opsledger.server.artifacts import layout
from opsledger.server.artifacts.files import parses
from opsledger.server.artifacts.store import Render
from opsledger.server.common import rawpath
from opsledger.server.ledger.postgres import locks, timeouts

_FOLDER = "substring(path from '^(.*)/[^/]*$')"


def insert_artifacts(conn: psycopg.Connection, artifacts: list[tuple[str, bytes]]) -> None:
    """New rows of the artifacts table, each with its digest and whether it is a JSON object."""
    if not artifacts:
        return
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO artifacts (path, bytes, sha256, json_object) VALUES (%s, %s, %s, %s)",
                        [(path, data, hashlib.sha256(data).hexdigest(), parses(data))
                         for path, data in artifacts])


class LockLost(RuntimeError):
    """An ``exclusive`` lock's session ended while the block ran: nothing was written."""


class PostgresArtifacts:
    def __init__(self, url: str, pool_size: int = 4) -> None:
        self.url = url
        self._pool = ConnectionPool(url, min_size=0, max_size=pool_size, open=True, timeout=5,
                                    reconnect_timeout=timeouts.RECONNECT_S,
                                    kwargs=timeouts.connect_kwargs(), name="opsledger-artifacts")
        self._held = threading.local()  # name -> backend pid of the session holding it

    def __repr__(self) -> str:
        from opsledger.server.ledger.postgres.ledger import redact

        return f"PostgresArtifacts({redact(self.url)!r})"

    def close(self) -> None:
        self._pool.close()

    # -- writes ------------------------------------------------------------------------
    def write_pair(self, kind: str, stamp: str, render: Render) -> tuple[str, str]:
        k = layout.kind(kind)
        layout.check_stamp(stamp)
        with self._pool.connection() as conn, conn.transaction():
            self._check_locks(conn)
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (locks.NAMESPACE, locks.ARTIFACT_NAMES))
            n = 1
            while conn.execute("SELECT 1 FROM artifacts WHERE path = %s",
                               (layout.snapshot_ref(kind, stamp, n),)).fetchone():
                n += 1
            snap = layout.snapshot_ref(kind, stamp, n)
            data = render(snap)
            digest, is_object = hashlib.sha256(data).hexdigest(), parses(data)
            conn.execute("INSERT INTO artifacts (path, bytes, sha256, json_object) VALUES (%s, %s, %s, %s)",
                         (snap, data, digest, is_object))
            conn.execute("INSERT INTO artifacts (path, bytes, sha256, json_object) VALUES (%s, %s, %s, %s) "
                         "ON CONFLICT (path) DO UPDATE SET bytes = excluded.bytes, sha256 = excluded.sha256, "
                         "json_object = excluded.json_object, written_at = now()",
                         (k.latest_ref, data, digest, is_object))
        return k.latest_ref, snap

    def _check_locks(self, conn: psycopg.Connection) -> None:
        for name, pid in list(getattr(self._held, "names", {}).items()):
            held = conn.execute(  # type: ignore[index]
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = %s "
                "AND objid = %s AND objsubid = 2 AND pid = %s AND granted)",
                (locks.NAMESPACE, locks.KEYS[name], pid)).fetchone()[0]
            if not held:
                raise LockLost(f"the {name} lock was lost (its database session ended): nothing written")

    # -- reads -------------------------------------------------------------------------
    def read_latest(self, kind: str) -> bytes | None:
        return self.read(layout.latest_ref(kind))

    def read(self, ref: str) -> bytes | None:
        ref = rawpath.check_syntax(ref)
        with self._pool.connection() as conn:
            row = conn.execute("SELECT bytes FROM artifacts WHERE path = %s", (ref,)).fetchone()
        return bytes(row[0]) if row else None

    def snapshots(self, kind: str, limit: int = 10) -> list[str]:
        k = layout.kind(kind)
        with self._pool.connection() as conn:
            paths = [r[0] for r in conn.execute(f"SELECT path FROM artifacts WHERE {_FOLDER} = %s AND json_object",
                                                (k.snapshot_dir,))]
        keyed = []
        for path in paths:
            key = layout.snapshot_order(kind, path.rpartition("/")[2])
            if key is not None:
                keyed.append((key, path))
        keyed.sort(reverse=True)
        return [path for _key, path in keyed[:limit]]

    def resolve(self, ref: str) -> str | None:
        ref = rawpath.check_syntax(ref)
        with self._pool.connection() as conn:
            row = conn.execute("SELECT sha256 FROM artifacts WHERE path = %s", (ref,)).fetchone()
        return f"postgresql artifacts:{ref}" if row else None

    def check_ref(self, ref: str) -> None:
        rawpath.check_syntax(ref)  # rows have no symlinks: the syntax is the whole rule

    def recover(self) -> list[str]:
        """Nothing to sweep: a pair is one transaction, so a writer killed mid-write
        left nothing behind."""
        return []

    # -- the cross-replica lock -----------------------------------------------------------
    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        with self._session_lock(name, wait=True):
            yield

    @contextmanager
    def try_exclusive(self, name: str) -> Iterator[bool]:
        """Like ``exclusive`` but never waits: yields False when another holds it."""
        with self._session_lock(name, wait=False) as got:
            yield got

    @contextmanager
    def _session_lock(self, name: str, wait: bool) -> Iterator[bool]:
        """A session advisory lock on a connection of its own, held for the block.
        While held, every pair this thread writes first checks, in its own
        transaction, that the lock's session still holds it (``_check_locks``)."""
        if name not in locks.KEYS or name == "migrate":
            raise ValueError(f"lock name: must be one of cycle, reaper (got {name!r})")
        key = (locks.NAMESPACE, locks.KEYS[name])
        conn = psycopg.connect(self.url, autocommit=True, **timeouts.connect_kwargs(statements=False))
        try:
            if wait:
                conn.execute("SELECT pg_advisory_lock(%s, %s)", key)
            elif not conn.execute("SELECT pg_try_advisory_lock(%s, %s)", key).fetchone()[0]:  # type: ignore[index]
                yield False
                return
            names = getattr(self._held, "names", None)
            if names is None:
                names = self._held.names = {}
            names[name] = conn.info.backend_pid
            try:
                yield True
            finally:
                names.pop(name, None)
                try:
                    conn.execute("SELECT pg_advisory_unlock(%s, %s)", key)
                except psycopg.Error:
                    pass  # the session is gone, and its lock with it
        finally:
            conn.close()
