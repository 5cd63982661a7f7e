"""Schema migrations on a real PostgreSQL: fresh, re-run, tampered, old schema."""
from __future__ import annotations

import subprocess

import psycopg
import pytest

from opsledger.server.ledger.postgres import migrate
from tests.helpers import REPO, opsledger_cmd


def _cli(*args: str, url: str) -> subprocess.CompletedProcess:
    return subprocess.run(opsledger_cmd(*args, "--store", url), cwd=REPO, capture_output=True, text=True, timeout=60)


def test_fresh_database_gets_every_migration_recorded_with_its_sha256(pg_empty_url):
    out = _cli("db", "migrate", url=pg_empty_url)
    assert out.returncode == 0, out.stderr
    known = migrate.migrations()
    with psycopg.connect(pg_empty_url) as conn:
        rows = conn.execute("SELECT version, name, sha256 FROM schema_migrations ORDER BY version").fetchall()
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert rows == [(m.version, m.name, m.sha256) for m in known]
    assert {"ticket_requests", "ticket_results", "tickets", "ticket_counts", "artifacts"} <= tables
    for m in known:
        assert f"applied {m.name}" in out.stdout
    migrate.check(pg_empty_url)  # current now: no error


def test_rerun_is_a_no_op(pg_empty_url):
    assert migrate.migrate(pg_empty_url, log=lambda _m: None)
    with psycopg.connect(pg_empty_url) as conn:
        before = conn.execute("SELECT version, applied_at FROM schema_migrations ORDER BY version").fetchall()
    out = _cli("db", "migrate", url=pg_empty_url)
    assert out.returncode == 0 and "nothing to apply" in out.stdout
    with psycopg.connect(pg_empty_url) as conn:
        after = conn.execute("SELECT version, applied_at FROM schema_migrations ORDER BY version").fetchall()
    assert after == before


def test_an_applied_file_that_was_edited_is_refused(pg_empty_url):
    migrate.migrate(pg_empty_url, log=lambda _m: None)
    with psycopg.connect(pg_empty_url) as conn:
        # What the database would hold had 0001 been applied from other text.
        conn.execute("UPDATE schema_migrations SET sha256 = repeat('0', 64) WHERE version = 1")
    out = _cli("db", "migrate", url=pg_empty_url)
    assert out.returncode == 1
    assert "0001_init.sql was edited after it was applied" in out.stderr
    with pytest.raises(migrate.SchemaError, match="edited after it was applied"):
        migrate.check(pg_empty_url)


def test_a_database_newer_than_the_code_is_refused(pg_empty_url):
    migrate.migrate(pg_empty_url, log=lambda _m: None)
    with psycopg.connect(pg_empty_url) as conn:
        conn.execute("INSERT INTO schema_migrations (version, name, sha256) VALUES (99, '0099_future.sql', 'x')")
    with pytest.raises(migrate.SchemaError, match="newer than the code"):
        migrate.migrate(pg_empty_url, log=lambda _m: None)


def test_a_failing_migration_leaves_nothing_half_applied(pg_empty_url, monkeypatch):
    good = migrate.migrations()
    broken = good + [migrate.Migration(len(good) + 1, f"{len(good) + 1:04d}_broken.sql",
                                       "CREATE TABLE half_done (x int);\nSELECT no_such_function();")]
    monkeypatch.setattr(migrate, "migrations", lambda: broken)
    with pytest.raises(psycopg.errors.UndefinedFunction):
        migrate.migrate(pg_empty_url, log=lambda _m: None)
    with psycopg.connect(pg_empty_url) as conn:
        assert conn.execute("SELECT to_regclass('half_done')").fetchone()[0] is None
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [m.version for m in good]  # the earlier ones stay applied


def test_status_names_pending_migrations_of_an_old_schema(pg_empty_url, monkeypatch):
    first = migrate.migrations()[:1]
    monkeypatch.setattr(migrate, "migrations", lambda: first)
    migrate.migrate(pg_empty_url, log=lambda _m: None)
    monkeypatch.undo()
    with pytest.raises(migrate.SchemaError, match=r"not current .*0002_artifacts\.sql.*opsledger db migrate"):
        migrate.check(pg_empty_url)
    out = _cli("db", "status", url=pg_empty_url)
    assert out.returncode == 1 and "0002_artifacts.sql" in out.stdout
