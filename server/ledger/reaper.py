"""The reaper (SPEC §2.8): stale IN_PROGRESS tickets are completed FAILED.

The backend lists them (``stale_in_progress``, no scan); ``run`` is the shell:
its FAILED lines go through the store exactly like any complete, so a
worker that completes first wins and the reaper's line is refused (and vice
versa): one terminal line per ticket, always.
"""
from __future__ import annotations

import logging

from opsledger.server.artifacts.store import ArtifactStore
from opsledger.server.common.canonical import pretty
from opsledger.server.common.clock import Clock, file_stamp, iso
from opsledger.server.errors import IllegalTransition, InvalidArgument
from opsledger.server.ledger.backend import LedgerBackend, StaleTicket, Transition
from opsledger.server.ledger.machine import Event
from opsledger.server.ledger.records import RESULTS_REF

log = logging.getLogger("opsledger.reaper")

SCHEMA = "TICKET_REAPER_REPORT_V1"
PROCESSOR = "TICKET_REAPER"
DEFAULT_THRESHOLD_S = 86400
DEFAULT_MAX_CLEAN = 50
MAX_MAX_CLEAN = 5000


def message_for(threshold_s: int) -> str:
    return f"AUTO_CLEANUP_STALE_IN_PROGRESS: exceeded {threshold_s}s threshold"


def limits(threshold_s: int, max_clean: int) -> tuple[int, int]:
    threshold_s = threshold_s or DEFAULT_THRESHOLD_S
    max_clean = max_clean or DEFAULT_MAX_CLEAN
    if threshold_s < 1:
        raise InvalidArgument.one("threshold_seconds", "must be >= 1 (0 means 86400)")
    if not 1 <= max_clean <= MAX_MAX_CLEAN:
        raise InvalidArgument.one("max_clean", f"must be 1-{MAX_MAX_CLEAN} (0 means {DEFAULT_MAX_CLEAN})")
    return threshold_s, max_clean


def report(asof: str, threshold_s: int, stale_count: int, cleaned: list[StaleTicket], dry_run: bool = False) -> dict:
    """In a dry run ``cleaned`` lists what would be cleaned; nothing counts as cleaned."""
    reason = message_for(threshold_s)
    return {
        "schema": SCHEMA,
        "asof": asof,
        "decision": "CLEANED" if cleaned and not dry_run else "NONE",
        "threshold_seconds": threshold_s,
        "stale_count": stale_count,
        "cleaned_count": 0 if dry_run else len(cleaned),
        "cleaned_items": [
            {"request_id": s.request_id, "request_type": s.request_type,
             "last_processed_at": s.last_processed_at, "reason": reason}
            for s in cleaned
        ],
        "evidence_refs": [RESULTS_REF],
    }


def run(store: LedgerBackend, artifacts: ArtifactStore, clock: Clock, threshold_s: int = 0, max_clean: int = 0,
        dry_run: bool = False) -> tuple[dict, str | None]:
    """Blocking (call from a thread). Returns (report, snapshot ref or None);
    the report's pair is written under ``root``."""
    threshold_s, max_clean = limits(threshold_s, max_clean)
    now = clock.now()
    chosen, stale_count = store.stale_in_progress(int(now.timestamp()) - threshold_s, max_clean)
    if dry_run:
        return report(iso(now), threshold_s, stale_count, chosen, dry_run=True), None
    message = message_for(threshold_s)
    futures = [(s, store.execute(Transition(s.request_id, Event.COMPLETE_FAILED, PROCESSOR, message)))
               for s in chosen]
    cleaned = []
    for s, fut in futures:
        try:
            fut.result()
            cleaned.append(s)
        except IllegalTransition:
            log.info("reaper: %s was completed by its worker first", s.request_id)
    body = report(iso(now), threshold_s, stale_count, cleaned)
    _latest, snapshot = artifacts.write_pair("reaper", file_stamp(now), lambda _ref: pretty(body))
    if cleaned:
        log.warning("reaper failed %d stale ticket(s) (threshold %ds)", len(cleaned), threshold_s)
    return body, snapshot
