"""The ledger's promises, stated once for every backend (through ``LedgerBackend`` only).

Adding a backend is one line in ``BACKENDS``: a name and a factory
``(place, clock) -> LedgerBackend`` (not yet opened). Calling the factory
again with the same ``place`` must reach the same data (that is a restart).
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from opsledger.server.common.clock import FixedClock, configured_zone
from opsledger.server.ledger.backends import make_backend

BACKENDS = {
    "jsonl": lambda place, clock: make_backend("jsonl", place, clock, fsync=False),
    "postgresql": lambda place, clock: make_backend(_pg_database(place), place, clock),
}

# PostgreSQL: the same place reaches the same database again (a restart); each test
# has a fresh migrated database of its own, emptied when the test moves on to a new
# place (the model test's examples), in the test session's throwaway cluster.
_PG: dict = {"places": {}}


def _pg_database(place: Path) -> str:
    places = _PG["places"]
    if place not in places:
        url = _PG["url"]
        if url in places.values():  # another place of this test: another database, copied fresh
            from tests.pg import fresh_name

            url = _PG["cluster"].create_database(fresh_name(), template=_PG["template"])
        places[place] = url
    return places[place]


@pytest.fixture(autouse=True)
def _pg_database_for_postgresql_cases(request):
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and "postgresql" in callspec.params.values():
        _PG["url"], _PG["places"] = request.getfixturevalue("pg_url"), {}
        _PG["cluster"] = request.getfixturevalue("pg_cluster")
        _PG["template"] = request.getfixturevalue("pg_template")


class Ledgers:
    """Opens the backend under test on one place; reopens it like a restart."""

    def __init__(self, kind: str, place: Path) -> None:
        self.kind = kind
        self.place = place
        self.clock = FixedClock(datetime(2026, 1, 3, 14, 50, tzinfo=configured_zone()))
        self.current = None

    def open(self):
        self.current = BACKENDS[self.kind](self.place, self.clock).open()
        return self.current

    def reopen(self):
        self.close()
        return self.open()

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None


@pytest.fixture(params=sorted(BACKENDS))
def ledgers(request, tmp_path):
    opened = Ledgers(request.param, tmp_path / "ledger")
    yield opened
    opened.close()


@pytest.fixture
def ledger(ledgers):
    return ledgers.open()
