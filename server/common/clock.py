"""The one home of time: the configured zone, contract timestamps, file stamps.

Contract timestamps are ISO 8601 with seconds precision and an explicit offset
in the configured zone (``OPSLEDGER_TZ``, default ``Asia/Seoul``); file-name
stamps (``YYYYMMDD_HHMMSS``) use the same zone.
"""
from __future__ import annotations

import os
import time
from datetime import datetime
from zoneinfo import ZoneInfo

DEFAULT_TZ = "Asia/Seoul"


def configured_zone() -> ZoneInfo:
    return ZoneInfo(os.environ.get("OPSLEDGER_TZ") or DEFAULT_TZ)


class Clock:
    """Wall clock in the configured zone; tests pass a subclass to move time."""

    def __init__(self, zone: ZoneInfo | None = None) -> None:
        self.zone = zone or configured_zone()

    def now(self) -> datetime:
        return datetime.now(self.zone).replace(microsecond=0)

    def now_iso(self) -> str:
        return iso(self.now())

    def monotonic(self) -> float:
        return time.monotonic()


class FixedClock(Clock):
    """A clock that only moves when told to (tests, benchmarks)."""

    def __init__(self, start: datetime, zone: ZoneInfo | None = None) -> None:
        super().__init__(zone)
        self._now = start.astimezone(self.zone).replace(microsecond=0)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self._now = self._now + timedelta(seconds=seconds)


def iso(moment: datetime) -> str:
    """Contract form: ``2026-01-03T14:50:00+09:00``."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: contract timestamps carry an offset")
    return moment.replace(microsecond=0).isoformat(timespec="seconds")


def file_stamp(moment: datetime) -> str:
    """Snapshot file-name stamp: ``YYYYMMDD_HHMMSS`` in the moment's zone."""
    return moment.strftime("%Y%m%d_%H%M%S")


def parse_iso(text: str) -> datetime:
    """Parse a contract timestamp; refuses one without an offset."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp without offset: {text!r}")
    return moment


def epoch_seconds(text: str) -> int:
    """Seconds since the epoch of a contract timestamp (for ordering); ValueError without offset."""
    return int(parse_iso(text).timestamp())
