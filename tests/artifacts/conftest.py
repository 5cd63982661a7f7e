"""Every ArtifactStore implementation, for the suite in this folder.

Adding a backend is one entry in ``IMPLEMENTATIONS``: how to open a fresh,
empty store in a test's temp folder, and the Python source that opens the
same store in another process (for the cross-process lock).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from opsledger.server.artifacts.files import FileArtifacts
from opsledger.server.artifacts.store import ArtifactStore


@dataclass(frozen=True)
class Implementation:
    open: Callable[[Path, pytest.FixtureRequest], ArtifactStore]
    # Python source defining ``store``: the same storage, opened in another process.
    source: Callable[[ArtifactStore], str]


IMPLEMENTATIONS = {
    "files": Implementation(
        open=lambda tmp, _request: FileArtifacts(tmp / "root"),
        source=lambda s: f"from opsledger.server.artifacts.files import FileArtifacts\nstore = FileArtifacts({str(s.root)!r})\n",
    ),
    "postgresql": Implementation(
        open=lambda _tmp, request: _postgres(request.getfixturevalue("pg_url")),
        source=lambda s: f"from opsledger.server.artifacts.postgres import PostgresArtifacts\nstore = PostgresArtifacts({s.url!r})\n",  # noqa: E501
    ),
}


def _postgres(url: str) -> ArtifactStore:
    from opsledger.server.artifacts.postgres import PostgresArtifacts

    return PostgresArtifacts(url)


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def impl(request) -> Implementation:
    return IMPLEMENTATIONS[request.param]


@pytest.fixture
def artifacts(impl, tmp_path, request) -> ArtifactStore:
    store = impl.open(tmp_path, request)
    yield store
    close = getattr(store, "close", None)
    if close is not None:
        close()
