"""The P2 baseline: the same check-then-append ledger over SQLite.

WAL, ``synchronous=FULL``, one transaction per transition (BEGIN IMMEDIATE,
read the current status, check it with the same state machine, insert the
result, update the status, COMMIT). One connection per thread.
"""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import orjson

from opsledger.server.common.clock import Clock
from opsledger.server.ledger import records
from opsledger.server.ledger.machine import Event, next_status

SCHEMA = """
CREATE TABLE IF NOT EXISTS tickets (request_id TEXT PRIMARY KEY, status TEXT NOT NULL, record BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS results (result_id TEXT PRIMARY KEY, request_id TEXT NOT NULL, record BLOB NOT NULL);
"""


class SqliteLedger:
    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.clock = Clock()
        self._local = threading.local()
        conn = self._conn()
        conn.executescript(SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
        return conn

    def submit(self, request_type: str, payload: dict) -> str:
        rec = records.request_record(records.new_id(), self.clock.now_iso(), request_type, payload, None, None)
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO tickets VALUES (?, ?, ?)", (rec["request_id"], "OPEN", orjson.dumps(rec)))
        conn.execute("COMMIT")
        return rec["request_id"]

    def transition(self, request_id: str, event: Event, processor: str, message: str) -> str:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT status FROM tickets WHERE request_id = ?", (request_id,)).fetchone()
            if row is None:
                raise KeyError(request_id)
            status = next_status(row[0], event)
            rec = records.result_record(records.new_id(), request_id, self.clock.now_iso(), status, processor, message, [])
            conn.execute("INSERT INTO results VALUES (?, ?, ?)", (rec["result_id"], request_id, orjson.dumps(rec)))
            conn.execute("UPDATE tickets SET status = ? WHERE request_id = ?", (status, request_id))
            conn.execute("COMMIT")
            return rec["result_id"]
        except BaseException:
            conn.execute("ROLLBACK")
            raise
