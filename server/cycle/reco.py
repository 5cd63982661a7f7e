"""Recommendations (RECO_REPORT_V1, SPEC §3.3). Pure: bundle check + previous reco in, report out.

Recommendations are made only from a bundle that is valid and not stale.
Scoring: ``decision_params.scores[ticker]`` (equal when absent; a score <= 0
drops the ticker); rank by score then ticker; keep the top max_positions;
weight each ``min(max_position_pct, (1 - min_cash_pct) / k)``. Against the
previous reco's held tickers: new -> BUY, kept -> HOLD, dropped -> SELL (0).
"""
from __future__ import annotations

from opsledger.server.common.canonical import sha256_hex
from opsledger.server.cycle.bundle import LATEST_REF, BundleCheck, sub_object, universe_tickers

SCHEMA = "RECO_REPORT_V1"
DEFAULT_SCORE = 1.0


def _held(previous: dict | None) -> dict[str, dict]:
    """Tickers the previous reco holds (BUY or HOLD), with their rows."""
    if not isinstance(previous, dict):
        return {}
    rows = previous.get("recommendations")
    if not isinstance(rows, list):
        return {}
    return {
        r["ticker"]: r
        for r in rows
        if isinstance(r, dict) and isinstance(r.get("ticker"), str) and r.get("action") in ("BUY", "HOLD")
    }


def _source(check: BundleCheck) -> dict | None:
    b = check.bundle
    if not isinstance(b, dict):
        return None
    strategy = sub_object(b, "strategy")
    integrity = sub_object(b, "integrity")
    return {
        "bundle_id": b.get("bundle_id"),
        "strategy_name": strategy.get("name"),
        "strategy_version": strategy.get("version"),
        "latest_ref": LATEST_REF,
        "created_at": b.get("created_at"),
        "bundle_decision": check.decision,
        "integrity": {"payload_sha256": integrity.get("payload_sha256")},
    }


def _summary(rows: list[dict], cash_pct: float) -> dict:
    count = {a: sum(1 for r in rows if r["action"] == a) for a in ("BUY", "SELL", "HOLD")}
    return {
        "total_positions": count["BUY"] + count["HOLD"],
        "buy_count": count["BUY"],
        "sell_count": count["SELL"],
        "hold_count": count["HOLD"],
        "cash_pct": cash_pct,
    }


def _report(report_id: str, created_at: str, check: BundleCheck, decision: str, reason: str, rows: list[dict],
            constraints: dict | None, cash_pct: float) -> dict:
    return {
        "schema": SCHEMA,
        "report_id": report_id,
        "created_at": created_at,
        "source_bundle": _source(check),
        "decision": decision,
        "reason": reason,
        "recommendations": rows,
        "summary": _summary(rows, cash_pct),
        "constraints_applied": constraints,
        "evidence_refs": [LATEST_REF] if check.decision != "NO_BUNDLE" else [],
        "integrity": {"payload_sha256": sha256_hex(rows)},
    }


def pick(strategy: dict, previous: dict | None) -> tuple[list[dict], dict, float]:
    """The recommendation rows, the constraints applied and the cash left."""
    risk = strategy["risk_limits"]
    limits = strategy["position_limits"]
    max_pos_pct = float(risk["max_position_pct"])
    max_positions = int(limits["max_positions"])
    min_cash = float(limits["min_cash_pct"])
    params = sub_object(strategy, "decision_params")
    scores = sub_object(params, "scores")
    universe = universe_tickers(strategy["universe"])
    names = dict(universe)
    scored = []
    for ticker, _name in universe:
        score = scores.get(ticker, DEFAULT_SCORE)
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            raise ValueError(f"decision_params.scores[{ticker}] is not a number")
        if score > 0:
            scored.append((float(score), ticker))
    scored.sort(key=lambda s: (-s[0], s[1]))
    chosen = scored[:max_positions]
    k = len(chosen)
    weight = round(min(max_pos_pct, (1 - min_cash) / k), 4) if k else 0.0
    held = _held(previous)
    all_scores = {t: s for s, t in scored}
    rows = []
    for rank, (score, ticker) in enumerate(chosen, 1):
        action = "HOLD" if ticker in held else "BUY"
        capped = weight == round(max_pos_pct, 4)
        rows.append({
            "ticker": ticker,
            "name": names.get(ticker) or held.get(ticker, {}).get("name"),
            "action": action,
            "weight_pct": weight,
            "signal_score": score,
            "rationale": f"rank {rank}/{k} by score {score:g}"
            + ("; weight capped at max_position_pct" if capped else "; equal weight after min_cash_pct"),
        })
    chosen_set = {t for _s, t in chosen}
    for ticker in sorted(held):
        if ticker in chosen_set:
            continue
        why = "not ranked in the top max_positions" if ticker in all_scores else (
            "score <= 0" if ticker in names else "no longer in the universe")
        rows.append({
            "ticker": ticker,
            "name": names.get(ticker) or held[ticker].get("name"),
            "action": "SELL",
            "weight_pct": 0.0,
            "signal_score": all_scores.get(ticker, 0.0),
            "rationale": f"held before; {why}",
        })
    cash = round(1 - weight * k, 4)
    constraints = {"max_position_pct": max_pos_pct, "max_positions": max_positions, "min_cash_pct": min_cash}
    return rows, constraints, cash


def generate_explained(check: BundleCheck, previous: dict | None, report_id: str,
                       created_at: str) -> tuple[dict, str | None]:
    """The report, and why it is BLOCKED when it is (for the receipt's reco.error)."""
    def blocked_or_empty(decision: str, reason: str) -> dict:
        return _report(report_id, created_at, check, decision, reason, [], None, 1.0)

    if check.decision == "NO_BUNDLE":
        return blocked_or_empty("EMPTY_RECO", "NO_BUNDLE"), None
    if not check.valid:
        return blocked_or_empty("BLOCKED", "BUNDLE_FAIL"), f"bundle {check.decision}: {check.error_text()}"
    if check.stale:
        return blocked_or_empty("EMPTY_RECO", "BUNDLE_STALE"), None
    try:
        rows, constraints, cash = pick((check.bundle or {})["strategy"], previous)
    except Exception as exc:  # noqa: BLE001 - any failure to generate blocks, it never guesses
        return blocked_or_empty("BLOCKED", "SYSTEM_ERROR"), f"error while generating: {type(exc).__name__}: {exc}"
    held_now = any(r["action"] in ("BUY", "HOLD") for r in rows)
    decision = "GENERATED" if held_now else "EMPTY_RECO"
    return _report(report_id, created_at, check, decision, "SUCCESS", rows, constraints, cash), None


def generate(check: BundleCheck, previous: dict | None, report_id: str, created_at: str) -> dict:
    return generate_explained(check, previous, report_id, created_at)[0]
