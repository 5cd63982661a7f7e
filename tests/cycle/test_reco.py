"""Reco generation: ranking, caps, cash, BUY/HOLD/SELL, no pick (pure)."""
from opsledger.server.common.canonical import sha256_hex
from opsledger.server.cycle.bundle import BundleCheck
from opsledger.server.cycle.reco import generate, pick


def strat(universe, scores=None, max_positions=3, max_pos=0.5, min_cash=0.1):
    s = {"name": "s", "version": "1", "universe": universe,
         "risk_limits": {"max_position_pct": max_pos},
         "position_limits": {"max_positions": max_positions, "min_cash_pct": min_cash}}
    if scores is not None:
        s["decision_params"] = {"scores": scores}
    return s


def check_for(s):
    return BundleCheck("PASS", bundle={"bundle_id": "b", "created_at": "x", "strategy": s,
                                       "integrity": {"payload_sha256": "h"}})


def test_rank_by_score_then_ticker_keep_top_n():
    rows, constraints, cash = pick(strat(["D", "B", "A", "C"], {"A": 1, "B": 3, "C": 3, "D": 2}), None)
    assert [r["ticker"] for r in rows] == ["B", "C", "D"]
    assert constraints == {"max_position_pct": 0.5, "max_positions": 3, "min_cash_pct": 0.1}
    assert all(r["action"] == "BUY" for r in rows)
    assert [r["weight_pct"] for r in rows] == [0.3, 0.3, 0.3] and cash == 0.1


def test_equal_scores_when_absent_and_ticker_order():
    rows, _, _ = pick(strat(["Z", "Y", "X"], max_positions=2), None)
    assert [r["ticker"] for r in rows] == ["X", "Y"]


def test_cap_at_max_position_pct_leaves_more_cash():
    rows, _, cash = pick(strat(["A", "B"], max_positions=2, max_pos=0.2, min_cash=0.0), None)
    assert [r["weight_pct"] for r in rows] == [0.2, 0.2] and cash == 0.6


def test_non_positive_scores_drop_tickers():
    rows, _, _ = pick(strat(["A", "B", "C"], {"A": 0, "B": -1, "C": 0.5}), None)
    assert [r["ticker"] for r in rows] == ["C"]


def test_buy_hold_sell_against_previous():
    previous = {"recommendations": [
        {"ticker": "A", "action": "BUY", "name": "Alpha"},
        {"ticker": "B", "action": "HOLD"},
        {"ticker": "Z", "action": "SELL"},  # sold before: not held
    ]}
    rows, _, cash = pick(strat(["A", "B", "C"], {"A": 1, "B": -1, "C": 2}, max_positions=2), previous)
    by = {r["ticker"]: r for r in rows}
    assert by["C"]["action"] == "BUY" and by["A"]["action"] == "HOLD"
    assert by["B"]["action"] == "SELL" and by["B"]["weight_pct"] == 0.0
    assert "Z" not in by and by["A"]["name"] == "Alpha"
    assert cash == round(1 - 2 * 0.45, 4)


def test_universe_objects_carry_names():
    rows, _, _ = pick(strat([{"ticker": "069500", "name": "KODEX 200"}]), None)
    assert rows[0]["name"] == "KODEX 200"


def test_generate_report_shape_and_integrity():
    s = strat(["A", "B"])
    report = generate(check_for(s), None, "rid", "2026-01-24T19:00:00+09:00")
    assert report["decision"] == "GENERATED" and report["reason"] == "SUCCESS"
    assert report["summary"] == {"total_positions": 2, "buy_count": 2, "sell_count": 0, "hold_count": 0,
                                 "cash_pct": 0.1}
    assert report["integrity"]["payload_sha256"] == sha256_hex(report["recommendations"])
    assert set(report["recommendations"][0]) == {"ticker", "name", "action", "weight_pct", "signal_score", "rationale"}


def test_no_pick_is_empty_reco_success():
    report = generate(check_for(strat(["A"], {"A": -1})), None, "rid", "t")
    assert (report["decision"], report["reason"]) == ("EMPTY_RECO", "SUCCESS")
    assert report["summary"]["total_positions"] == 0 and report["summary"]["cash_pct"] == 1.0


def test_decisions_for_unusable_bundles():
    assert (generate(BundleCheck("NO_BUNDLE"), None, "r", "t")["decision"],
            generate(BundleCheck("NO_BUNDLE"), None, "r", "t")["reason"]) == ("EMPTY_RECO", "NO_BUNDLE")
    fail = generate(BundleCheck("FAIL", bundle={}), None, "r", "t")
    assert (fail["decision"], fail["reason"]) == ("BLOCKED", "BUNDLE_FAIL")
    stale = generate(BundleCheck("WARN", stale=True, bundle={"strategy": strat(["A"])}), None, "r", "t")
    assert (stale["decision"], stale["reason"]) == ("EMPTY_RECO", "BUNDLE_STALE")
