"""Choosing the ledger backend from one setting: ``--store`` / ``OPSLEDGER_STORE``.

The value is a backend name (``jsonl``, the default: the two JSONL logs under
the data root) or a URL whose scheme names the backend (a
``postgresql://…`` URL will select the PostgreSQL backend). Adding a backend
is one entry in ``_NAMES`` or ``_SCHEMES``.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from opsledger.server.common.clock import Clock
from opsledger.server.ledger.backend import LedgerBackend
from opsledger.server.settings import SettingsError

DEFAULT = "jsonl"
SETTING = "--store / OPSLEDGER_STORE"

Factory = Callable[..., LedgerBackend]


def _jsonl(spec: str, root: Path, clock: Clock | None, fsync: bool, on_failure, **options) -> LedgerBackend:
    from opsledger.server.ledger.jsonl.store import JsonlLedger

    return JsonlLedger(root, clock, fsync=fsync, on_failure=on_failure, **options)


def _postgresql(spec: str, root: Path, clock: Clock | None, fsync: bool, on_failure, **_options) -> LedgerBackend:
    # The database's own durability settings apply; ``fsync`` is the JSONL files' setting.
    from opsledger.server.ledger.postgres.ledger import PostgresLedger

    return PostgresLedger(spec, clock, on_failure=on_failure)


_NAMES: dict[str, Factory] = {"jsonl": _jsonl}
_SCHEMES: dict[str, Factory] = {"postgresql": _postgresql, "postgres": _postgresql}


def is_postgres(spec: str | None) -> bool:
    """The setting names the PostgreSQL backend (whose artifacts live in the same database)."""
    try:
        return _factory(spec) is _postgresql  # type: ignore[arg-type]
    except SettingsError:
        return False


def _factory(spec: str) -> Factory:
    spec = (spec or DEFAULT).strip()
    if "://" in spec:
        scheme = spec.split("://", 1)[0].lower()
        if scheme in _SCHEMES:
            return _SCHEMES[scheme]
        # Only the scheme is echoed: the rest of a URL may hold a password.
        raise SettingsError(f"{SETTING}: no ledger backend for URLs of scheme {scheme!r}; "
                            f"use one of: {', '.join(sorted(_NAMES))}"
                            + (f" or a {', '.join(s + '://' for s in sorted(_SCHEMES))} URL" if _SCHEMES else ""))
    if spec in _NAMES:
        return _NAMES[spec]
    raise SettingsError(f"{SETTING}: unknown ledger backend {spec!r}; use one of: {', '.join(sorted(_NAMES))}"
                        + (f" or a {', '.join(s + '://' for s in sorted(_SCHEMES))} URL" if _SCHEMES else ""))


def check(spec: str) -> None:
    """Raise ``SettingsError`` naming the setting when ``spec`` selects no backend."""
    _factory(spec)


def make_backend(spec: str, root: Path, clock: Clock | None = None, fsync: bool = True,
                 on_failure: Callable[[BaseException], None] | None = None, **options) -> LedgerBackend:
    """The backend ``spec`` selects, not yet opened (``open()`` is blocking).

    ``options`` are backend-specific settings (the JSONL ledger's checkpoint ones)."""
    return _factory(spec)((spec or DEFAULT).strip(), Path(root), clock, fsync, on_failure, **options)
