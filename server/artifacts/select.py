"""Which ``ArtifactStore`` goes with the ledger backend (one setting: ``--store``).

With the PostgreSQL ledger the artifacts live in the same database, so every
replica reads what any replica wrote; otherwise they are files under the
data root.
"""
from __future__ import annotations

from pathlib import Path

from opsledger.server.artifacts.store import ArtifactStore


def artifacts_for(store: str | None, root: Path) -> ArtifactStore:
    from opsledger.server.ledger.backends import is_postgres

    spec = (store or "").strip()
    if is_postgres(spec):
        from opsledger.server.artifacts.postgres import PostgresArtifacts

        return PostgresArtifacts(spec)
    from opsledger.server.artifacts.files import FileArtifacts

    return FileArtifacts(Path(root))
