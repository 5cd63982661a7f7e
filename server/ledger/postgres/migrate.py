"""Schema migrations: numbered plain SQL files shipped in the package.

``opsledger db migrate`` applies every pending file in number order, each in
its own transaction, under an advisory lock (two replicas starting at once
do not both migrate), and records its sha256. A file edited after it was
applied is refused, as is a database that knows a migration this code does
not have (the code is older than the database). ``serve`` calls ``check``
and refuses a schema that is not current.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from opsledger.server.ledger.postgres import locks, timeouts
from opsledger.server.settings import SettingsError

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
COMMAND = "opsledger db migrate --store <URL>"

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    sha256     text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


class SchemaError(SettingsError):
    """The database schema cannot be used as it is; the message says what to do."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations() -> list[Migration]:
    """The package's migrations, in number order."""
    folder = resources.files("opsledger.server.ledger.postgres") / "migrations"
    out = []
    for entry in folder.iterdir():
        m = _NAME.match(entry.name)
        if m:
            out.append(Migration(int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    out.sort(key=lambda m: m.version)
    versions = [m.version for m in out]
    if versions != list(range(1, len(out) + 1)):
        raise SchemaError(f"migration files are not numbered 1..n without gaps: {versions}")
    return out


def _applied(conn: psycopg.Connection) -> dict[int, tuple[str, str]]:
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()[0]  # type: ignore[index]
    if not exists:
        return {}
    return {v: (name, sha) for v, name, sha in conn.execute("SELECT version, name, sha256 FROM schema_migrations")}


def _problems(applied: dict[int, tuple[str, str]], known: list[Migration]) -> list[str]:
    by_version = {m.version: m for m in known}
    problems = []
    for version, (name, sha) in sorted(applied.items()):
        mig = by_version.get(version)
        if mig is None:
            problems.append(f"migration {version:04d} ({name}) is applied in the database but unknown to this "
                            "opsledger (the database is newer than the code)")
        elif mig.sha256 != sha:
            problems.append(f"migration {mig.name} was edited after it was applied "
                            f"(recorded sha256 {sha[:12]}…, file {mig.sha256[:12]}…); restore the file")
    return problems


def status(url: str) -> tuple[list[str], list[str], list[str]]:
    """(applied names, pending names, problems), read without changing anything."""
    known = migrations()
    with psycopg.connect(url, autocommit=True, **timeouts.network_kwargs()) as conn:
        applied = _applied(conn)
    pending = [m.name for m in known if m.version not in applied]
    return [name for _v, (name, _s) in sorted(applied.items())], pending, _problems(applied, known)


def check(url: str) -> None:
    """Raise SchemaError (naming the command to run) unless the schema is current."""
    _applied_names, pending, problems = status(url)
    if problems:
        raise SchemaError("database schema cannot be used: " + "; ".join(problems))
    if pending:
        raise SchemaError(f"database schema is not current ({len(pending)} pending: {', '.join(pending)}); "
                          f"run `{COMMAND}` first")


def migrate(url: str, log=print) -> list[str]:
    """Apply every pending migration; returns the names applied (empty: nothing to do)."""
    known = migrations()
    done = []
    with psycopg.connect(url, autocommit=True, **timeouts.network_kwargs()) as conn:
        conn.execute("SELECT pg_advisory_lock(%s, %s)", (locks.NAMESPACE, locks.MIGRATE))
        try:
            conn.execute(_BOOKKEEPING)
            applied = _applied(conn)
            problems = _problems(applied, known)
            if problems:
                raise SchemaError("refusing to migrate: " + "; ".join(problems))
            for mig in known:
                if mig.version in applied:
                    continue
                with conn.transaction():
                    conn.execute(mig.sql)
                    conn.execute("INSERT INTO schema_migrations (version, name, sha256) VALUES (%s, %s, %s)",
                                 (mig.version, mig.name, mig.sha256))
                log(f"applied {mig.name} (sha256 {mig.sha256[:12]})")
                done.append(mig.name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", (locks.NAMESPACE, locks.MIGRATE))
    return done
