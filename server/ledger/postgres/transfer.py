"""The contract's files on demand: export a PostgreSQL ledger, import a JSONL one.

``export_to(url, folder)`` writes, from one snapshot (REPEATABLE READ), the
two JSONL logs (the stored lines, byte for byte, in log order) and every
stored artifact at its contract path: the folder is a data root that
``opsledger fsck`` and ``opsledger verify receipt`` read like any other.

``import_from(url, root)`` moves an embedded JSONL ledger into an empty
database: the files are checked by replay first (any fsck error refuses the
import), then copied in one transaction, lines unchanged, together with every
artifact the root holds at a contract path (bundles, reports, receipts), so
an export after the import gives back the same data root.
"""
from __future__ import annotations

from pathlib import Path

import psycopg

from opsledger.server.artifacts import layout
from opsledger.server.artifacts.postgres import insert_artifacts
from opsledger.server.common import rawpath
from opsledger.server.common.atomic import atomic_replace
from opsledger.server.ledger import records
from opsledger.server.ledger.postgres import timeouts
from opsledger.server.ledger.records import REQUESTS_REF, RESULTS_REF


class TransferError(Exception):
    """The export or import cannot go ahead; the message says why. Nothing was changed."""


def export_to(url: str, folder: Path) -> dict[str, int]:
    folder = Path(folder)
    for rel in (REQUESTS_REF, RESULTS_REF):
        if (folder / rel).exists():
            raise TransferError(f"{folder / rel} already exists: export into an empty folder")
    with psycopg.connect(url, **timeouts.network_kwargs()) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        out = {}
        for rel, table in ((REQUESTS_REF, "ticket_requests"), (RESULTS_REF, "ticket_results")):
            lines = [bytes(r[0]) for r in conn.execute(f"SELECT line FROM {table} ORDER BY line_no")]
            atomic_replace(folder / rel, b"".join(line + b"\n" for line in lines))
            out[table] = len(lines)
        n = 0
        for path, data in conn.execute("SELECT path, bytes FROM artifacts ORDER BY path"):
            atomic_replace(rawpath.resolve(folder, path), bytes(data))
            n += 1
        out["artifacts"] = n
        conn.rollback()
    return out


def import_from(url: str, root: Path) -> dict[str, int]:
    from opsledger.server.ledger.jsonl.fsck import fsck

    root = Path(root)
    errors = [f for f in fsck(root) if f.severity == "error"]
    if errors:
        raise TransferError(f"{root}: the logs do not replay cleanly ({len(errors)} error(s), first: {errors[0]}); "
                            "run `opsledger fsck --root` and fix them first")
    requests = _read_lines(root / REQUESTS_REF)
    results = _read_lines(root / RESULTS_REF)
    artifacts = _artifact_files(root)
    with psycopg.connect(url, **timeouts.network_kwargs()) as conn, conn.transaction():
        conn.execute("LOCK TABLE ticket_requests, ticket_results, tickets, ledger_heads, artifacts IN EXCLUSIVE MODE")
        if conn.execute("SELECT EXISTS (SELECT 1 FROM ticket_requests)").fetchone()[0]:  # type: ignore[index]
            raise TransferError("the database already holds tickets: import only into an empty ledger")
        if conn.execute("SELECT EXISTS (SELECT 1 FROM artifacts)").fetchone()[0]:  # type: ignore[index]
            raise TransferError("the database already holds artifacts (a bundle or a cycle's reports): "
                                "import only into an empty ledger")
        insert_artifacts(conn, artifacts)
        with conn.cursor().copy("COPY ticket_requests (line_no, request_id, request_type, requested_epoch, "
                                "idempotency_key, line) FROM STDIN") as copy:
            for n, line in enumerate(requests, 1):
                rec, epoch = records.parse_request_line(line)
                copy.write_row((n, rec["request_id"], rec["request_type"], epoch, rec.get("idempotency_key"),
                                line))
        conn.execute("INSERT INTO tickets (request_id, seq, board_key, request_type, status) "
                     "SELECT request_id, seq, (requested_epoch << 32) | seq, request_type, 'OPEN' "
                     "FROM ticket_requests")
        with conn.cursor().copy("COPY ticket_results (line_no, result_id, request_id, status, processed_epoch, "
                                "line) FROM STDIN") as copy:
            for n, line in enumerate(results, 1):
                rec, epoch = records.parse_result_line(line)
                copy.write_row((n, rec["result_id"], rec["request_id"], rec["status"], epoch, line))
        conn.execute("""
                UPDATE tickets t SET status = x.status, last_result_id = x.result_id,
                       last_processor_id = convert_from(x.line, 'UTF8')::jsonb ->> 'processor_id',
                       last_epoch = x.processed_epoch
                FROM (SELECT DISTINCT ON (request_id) * FROM ticket_results ORDER BY request_id, seq DESC) x
                WHERE t.request_id = x.request_id""")
        conn.execute("UPDATE ledger_heads SET lines = CASE log WHEN 'requests' THEN %s ELSE %s END",
                     (len(requests), len(results)))
        # WatchTickets' order: the imported lines are one batch, every request then every result.
        if requests or results:
            conn.execute("INSERT INTO ledger_batches VALUES (1, 0, %s, 0, %s)", (len(requests), len(results)))
            conn.execute("UPDATE ledger_batch_head SET batches = 1")
        conn.execute("INSERT INTO ticket_counts (status, request_type, shard, n) "
                     "SELECT status, request_type, 0, count(*) FROM tickets GROUP BY status, request_type")
    return {"ticket_requests": len(requests), "ticket_results": len(results), "artifacts": len(artifacts)}


def _artifact_files(root: Path) -> list[tuple[str, bytes]]:
    """Every artifact of the root at its contract ref: each kind's latest file and its
    snapshots (files whose names are not snapshot names, such as temp files, are not)."""
    out = []
    for name, kind in layout.KINDS.items():
        refs = [kind.latest_ref]
        folder = rawpath.resolve(root, kind.snapshot_dir)
        if folder.is_dir():
            refs += sorted(f"{kind.snapshot_dir}/{p.name}" for p in folder.iterdir()
                           if p.is_file() and layout.snapshot_order(name, p.name) is not None)
        for ref in refs:
            data = rawpath.read_inside(root, ref)  # a regular file inside the root, or nothing
            if data is not None:
                out.append((ref, data))
    return out


def _read_lines(path: Path) -> list[bytes]:
    if not path.exists():
        return []
    return path.read_bytes().splitlines()
