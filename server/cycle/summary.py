"""Ops summary (OPS_SUMMARY_V1, SPEC §3.4). Pure: ledger counts + step results in, report out.

overall_status: BLOCKED (bundle FAIL/NO_BUNDLE, reco BLOCKED, or no reco report written) > WARN
(stale bundle, stale IN_PROGRESS tickets, recent failures, last cycle
FAILED) > NO_RUN_HISTORY (no earlier cycle) > OK.
"""
from __future__ import annotations

from opsledger.server.cycle.bundle import LATEST_REF, BundleCheck, sub_object
from opsledger.server.ledger.records import REQUESTS_REF as REQUESTS
from opsledger.server.ledger.records import RESULTS_REF as RESULTS

SCHEMA = "OPS_SUMMARY_V1"
WINDOW_HOURS = 72
MAX_RISKS = 5


def _risks(tickets_recent: dict, check: BundleCheck, reco: dict | None, reco_ref: str | None,
           last_cycle: dict | None, reco_error: str | None) -> list[dict]:
    risks: list[tuple[str, str, str, list[str]]] = []
    if check.decision == "NO_BUNDLE":
        risks.append(("BUNDLE_MISSING", "HIGH", "no strategy bundle is published", []))
    elif check.decision == "FAIL":
        risks.append(("BUNDLE_FAIL", "HIGH", "strategy bundle failed validation: " + (check.error_text() or ""), [LATEST_REF]))
    elif check.stale:
        risks.append(("BUNDLE_STALE", "MEDIUM", "strategy bundle is stale", [LATEST_REF]))
    elif check.decision == "WARN":
        risks.append(("BUNDLE_WARN", "LOW", check.error_text() or "bundle warning", [LATEST_REF]))
    if reco is None:
        why = f": {reco_error}" if reco_error else ""
        risks.append(("RECO_MISSING", "HIGH", "no recommendation report this cycle" + why, []))
    elif reco.get("decision") == "BLOCKED":
        risks.append(("RECO_BLOCKED", "HIGH", f"recommendations blocked: {reco.get('reason')}", [reco_ref] if reco_ref else []))
    if tickets_recent["stale_in_progress"]:
        risks.append(("STALE_IN_PROGRESS", "MEDIUM",
                      f"{tickets_recent['stale_in_progress']} ticket(s) IN_PROGRESS past the reaper threshold", [RESULTS]))
    if tickets_recent["failed"]:
        risks.append(("RECENT_TICKET_FAILURES", "LOW",
                      f"{tickets_recent['failed']} ticket(s) FAILED in the last {WINDOW_HOURS}h", [RESULTS]))
    if last_cycle and last_cycle.get("result") == "FAILED":
        risks.append(("LAST_CYCLE_FAILED", "MEDIUM", f"previous cycle failed: {last_cycle.get('reason')}", []))
    return [{"code": c, "severity": s, "message": m, "evidence_refs": e} for c, s, m, e in risks[:MAX_RISKS]]


def _overall(check: BundleCheck, reco: dict | None, risks: list[dict], last_cycle: dict | None) -> str:
    if check.decision in ("NO_BUNDLE", "FAIL") or reco is None or reco.get("decision") == "BLOCKED":
        return "BLOCKED"
    if risks:
        return "WARN"
    if last_cycle is None:
        return "NO_RUN_HISTORY"
    return "OK"


def build(
    asof: str,
    ticket_counts: dict[str, int],
    tickets_recent: dict[str, int],
    check: BundleCheck,
    reco: dict | None,
    reco_snapshot_ref: str | None,
    last_cycle: dict | None,
    reco_error: str | None = None,
) -> dict:
    """``reco`` is None when no reco report was written this cycle (``reco_error`` says why)."""
    bundle = check.bundle if isinstance(check.bundle, dict) else {}
    strategy = sub_object(bundle, "strategy")
    risks = _risks(tickets_recent, check, reco, reco_snapshot_ref, last_cycle, reco_error)
    refs = [REQUESTS, RESULTS]
    if check.decision != "NO_BUNDLE":
        refs.append(LATEST_REF)
    if reco_snapshot_ref:
        refs.append(reco_snapshot_ref)
    return {
        "schema": SCHEMA,
        "asof": asof,
        "overall_status": _overall(check, reco, risks, last_cycle),
        "tickets": {
            "open": ticket_counts["OPEN"],
            "in_progress": ticket_counts["IN_PROGRESS"],
            "done": ticket_counts["DONE"],
            "failed": ticket_counts["FAILED"],
            "total": sum(ticket_counts.values()),
        },
        "tickets_recent": {"window_hours": WINDOW_HOURS, **tickets_recent},
        "strategy_bundle": {
            "present": check.decision != "NO_BUNDLE",
            "decision": check.decision,
            "bundle_id": bundle.get("bundle_id"),
            "created_at": bundle.get("created_at"),
            "strategy_name": strategy.get("name"),
            "strategy_version": strategy.get("version"),
            "stale": check.stale,
            "latest_ref": LATEST_REF if check.decision != "NO_BUNDLE" else None,
        },
        "reco": {
            "decision": reco.get("decision") if reco else None,
            "reason": reco.get("reason") if reco else None,
            "snapshot_ref": reco_snapshot_ref,
            "summary": reco.get("summary") if reco else None,
        },
        "last_cycle": None if not last_cycle else {
            "cycle_id": last_cycle.get("cycle_id"),
            "asof": last_cycle.get("asof"),
            "result": last_cycle.get("result"),
            "decision": last_cycle.get("decision"),
            "reason": last_cycle.get("reason"),
        },
        "top_risks": risks,
        "evidence_refs": refs,
    }
