"""The receipt (LIVE_CYCLE_RECEIPT_V1, SPEC §3.6) and the result table (SPEC §3.7). Pure.

The table is data: the first row whose condition holds gives result,
decision and reason.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from opsledger.server.artifacts.layout import latest_ref
from opsledger.server.common.canonical import report_sha256
from opsledger.server.cycle.bundle import LATEST_REF as BUNDLE_LATEST
from opsledger.server.cycle.push import DELIVERY

SCHEMA = "LIVE_CYCLE_RECEIPT_V1"
LATEST = latest_ref("cycle")

# The locked contract's keys in its order (SPEC §3.6).
SEED_KEYS = ("schema", "cycle_id", "asof", "result", "decision", "reason", "bundle", "reco", "ops_summary",
             "push", "snapshot_ref", "evidence_refs", "integrity")
SEED_STEP_KEYS = {
    "bundle": ("latest_ref", "decision", "stale", "valid", "evidence_refs"),
    "reco": ("latest_ref", "snapshot_ref", "decision", "reason", "evidence_refs"),
    "ops_summary": ("latest_ref", "snapshot_ref"),
    "push": ("preview_ref", "send_receipt_ref", "delivery_actual"),
    "integrity": ("payload_sha256",),
}
STEP_EXTRA_KEY = "error"  # each step object may add it (SPEC §3.6)


@dataclass
class StepState:
    """What the runner observed of the steps (inputs of the table)."""

    system_error: str | None = None
    bundle_decision: str = "NO_BUNDLE"
    bundle_stale: bool = False
    bundle_error: str | None = None
    reco_failed: str | None = None
    reco_decision: str | None = None
    reco_reason: str | None = None
    reco_blocked: str | None = None  # why the reco is BLOCKED, when it is
    summary_failed: str | None = None
    push_failed: str | None = None
    refs: dict = field(default_factory=dict)


RESULT_TABLE: list[tuple[Callable[[StepState], bool], tuple[str, str, str]]] = [
    (lambda s: s.system_error is not None, ("FAILED", "BLOCKED", "SYSTEM_ERROR")),
    (lambda s: s.bundle_decision in ("FAIL", "NO_BUNDLE"), ("FAILED", "BLOCKED", "BUNDLE_FAIL")),
    (lambda s: s.reco_failed is not None, ("FAILED", "PARTIAL", "RECO_FAIL")),
    (lambda s: s.summary_failed is not None, ("FAILED", "PARTIAL", "SUMMARY_FAIL")),
    (lambda s: s.push_failed is not None, ("FAILED", "PARTIAL", "PUSH_FAIL")),
    (lambda s: s.bundle_stale, ("OK", "PARTIAL", "BUNDLE_STALE")),
    (lambda s: s.reco_decision == "BLOCKED", ("OK", "PARTIAL", "RECO_BLOCKED")),
    (lambda s: True, ("OK", "COMPLETED", "SUCCESS")),
]


def outcome(state: StepState) -> dict:
    for condition, (result, decision, reason) in RESULT_TABLE:
        if condition(state):
            return {"result": result, "decision": decision, "reason": reason}
    raise AssertionError("the last row always matches")


def _join(*texts: str | None) -> str | None:
    given = [t for t in texts if t]
    return "; ".join(given) if given else None


def build(cycle_id: str, asof: str, state: StepState, snapshot_ref: str) -> dict:
    """The receipt with its integrity hash; ``state.refs`` holds the files this run wrote."""
    refs = state.refs
    reco_latest = refs.get("reco_latest")
    receipt = {
        "schema": SCHEMA,
        "cycle_id": cycle_id,
        "asof": asof,
        **outcome(state),
        "bundle": {
            "latest_ref": BUNDLE_LATEST if state.bundle_decision != "NO_BUNDLE" else None,
            "decision": state.bundle_decision,
            "stale": state.bundle_stale,
            "valid": state.bundle_decision in ("PASS", "WARN"),
            "evidence_refs": [BUNDLE_LATEST] if state.bundle_decision != "NO_BUNDLE" else [],
            "error": state.bundle_error,
        },
        "reco": {
            "latest_ref": reco_latest,
            "snapshot_ref": refs.get("reco_snapshot"),
            "decision": state.reco_decision,
            "reason": state.reco_reason,
            "evidence_refs": [reco_latest] if reco_latest else [],
            "error": _join(state.reco_failed, state.reco_blocked),
        },
        "ops_summary": {
            "latest_ref": refs.get("summary_latest"),
            "snapshot_ref": refs.get("summary_snapshot"),
            # The only input read outside a step is the previous receipt (the
            # summary's last_cycle): a system error is reported here.
            "error": _join(f"SYSTEM_ERROR: {state.system_error}" if state.system_error else None,
                           state.summary_failed),
        },
        "push": {
            "preview_ref": refs.get("preview_latest"),
            "send_receipt_ref": None,
            "delivery_actual": DELIVERY,
            "error": state.push_failed,
        },
        "snapshot_ref": snapshot_ref,
        "evidence_refs": [LATEST, snapshot_ref],
    }
    receipt["integrity"] = {"payload_sha256": report_sha256(receipt)}
    return receipt
