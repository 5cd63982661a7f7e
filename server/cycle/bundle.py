"""Strategy bundle check (STRATEGY_BUNDLE_V1, SPEC §3.2). Pure: bytes in, verdict out.

decision: NO_BUNDLE (no file) · FAIL (unreadable, wrong schema, missing keys,
hash mismatch, bad signature when a key is configured, created_at more than
5 min in the future, impossible limits, secret-looking keys) · WARN (stale,
or malformed evidence refs) · PASS.
"""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeGuard

from opsledger.server.artifacts.layout import latest_ref
from opsledger.server.common import rawpath, strict_json
from opsledger.server.common.canonical import legacy_sha256_hex, sha256_hex
from opsledger.server.common.clock import parse_iso

SCHEMA = "STRATEGY_BUNDLE_V1"
LATEST_REF = latest_ref("bundle")
FUTURE_SKEW = timedelta(minutes=5)
MONTHLY_MAX_AGE_S = 35 * 86400
SECRET_MARKERS = ("token", "secret", "password", "api_key", "apikey")


@dataclass
class BundleCheck:
    decision: str  # PASS | WARN | FAIL | NO_BUNDLE
    stale: bool = False
    bundle: dict | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.decision in ("PASS", "WARN")

    def error_text(self) -> str | None:
        items = self.problems or self.warnings
        return "; ".join(items) if items else None


def _secret_keys(obj: Any, path: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            here = f"{path}.{key}" if path else str(key)
            if any(m in str(key).lower() for m in SECRET_MARKERS):
                found.append(here)
            found += _secret_keys(value, here)
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            found += _secret_keys(value, f"{path}[{i}]")
    return found


def sub_object(obj: dict, key: str) -> dict[str, Any]:
    """``obj[key]`` when it is a JSON object, else an empty one (bundles are read defensively)."""
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def universe_tickers(universe: list) -> list[tuple[str, str | None]]:
    """(ticker, name) of each entry; raises ValueError naming the bad entry."""
    out: list[tuple[str, str | None]] = []
    for i, item in enumerate(universe):
        if isinstance(item, str) and item:
            out.append((item, None))
        elif isinstance(item, dict) and isinstance(item.get("ticker"), str) and item["ticker"]:
            name = item.get("name")
            out.append((item["ticker"], name if isinstance(name, str) else None))
        else:
            raise ValueError(f"strategy.universe[{i}] is not a ticker string or {{ticker, name}}")
    tickers = [t for t, _ in out]
    if len(set(tickers)) != len(tickers):
        raise ValueError("strategy.universe has duplicate tickers")
    return out


def _required(bundle: dict, problems: list[str]) -> None:
    strategy = bundle.get("strategy")
    for key in ("bundle_id", "created_at"):
        if not isinstance(bundle.get(key), str) or not bundle.get(key):
            problems.append(f"{key} is required")
    if not isinstance(strategy, dict):
        problems.append("strategy is required")
        return
    for key in ("name", "version"):
        if not isinstance(strategy.get(key), str) or not strategy.get(key):
            problems.append(f"strategy.{key} is required")
    universe = strategy.get("universe")
    if not isinstance(universe, list) or not universe:
        problems.append("strategy.universe must be a non-empty list")
    else:
        try:
            universe_tickers(universe)
        except ValueError as exc:
            problems.append(str(exc))
    risk = sub_object(strategy, "risk_limits")
    pos = sub_object(strategy, "position_limits")
    mpp = risk.get("max_position_pct")
    if not _number(mpp) or not 0 < mpp <= 1:
        problems.append("strategy.risk_limits.max_position_pct must be a number with 0 < x <= 1")
    mp = pos.get("max_positions")
    if isinstance(mp, float) and mp.is_integer():
        mp = int(mp)
    if isinstance(mp, bool) or not isinstance(mp, int) or mp < 1:
        problems.append("strategy.position_limits.max_positions must be an integer >= 1")
    mc = pos.get("min_cash_pct")
    if not _number(mc) or not 0 <= mc < 1:
        problems.append("strategy.position_limits.min_cash_pct must be a number with 0 <= x < 1")
    integrity = bundle.get("integrity")
    if not isinstance(integrity, dict) or not isinstance(integrity.get("payload_sha256"), str):
        problems.append("integrity.payload_sha256 is required")


def check_bundle(
    raw: bytes | None,
    now: datetime,
    max_age_s: int = 86400,
    key: bytes | None = None,
    check_ref: Callable[[str], object] = rawpath.check_syntax,
) -> BundleCheck:
    """Check the bytes of the latest bundle (None = none stored).

    ``check_ref`` (an ``ArtifactStore.check_ref``) also refuses evidence refs
    that escape the data root; by default only their syntax is checked.
    Whether a ref names anything stored is not asked (SPEC §5).
    """
    if raw is None:
        return BundleCheck("NO_BUNDLE", problems=["no bundle at " + LATEST_REF])
    try:
        bundle = strict_json.loads(raw.decode("utf-8"))
    except ValueError as exc:  # not UTF-8, not JSON, or a repeated key
        return BundleCheck("FAIL", problems=[f"unreadable: {exc}"])
    if not isinstance(bundle, dict):
        return BundleCheck("FAIL", problems=["not a JSON object"])
    problems: list[str] = []
    if bundle.get("schema") != SCHEMA:
        problems.append(f"schema must be {SCHEMA}")
    _required(bundle, problems)
    secrets = _secret_keys(bundle)
    if secrets:
        problems.append("secret-looking keys present: " + ", ".join(secrets))
    if problems:
        return BundleCheck("FAIL", bundle=bundle, problems=problems)

    strategy = bundle["strategy"]
    integrity = bundle["integrity"]
    claimed = integrity["payload_sha256"]
    if claimed not in (sha256_hex(strategy), legacy_sha256_hex(strategy)):
        problems.append("integrity.payload_sha256 does not match strategy")
    if key is not None:
        signature = integrity.get("signature")
        expected = hmac.new(key, claimed.encode(), hashlib.sha256).hexdigest()
        if not isinstance(signature, str) or not hmac.compare_digest(signature, expected):
            problems.append("integrity.signature is not a valid HMAC-SHA256 of payload_sha256")
    try:
        created = parse_iso(bundle["created_at"])
    except ValueError:
        problems.append("created_at is not an ISO 8601 time with offset")
        created = None
    if created is not None and created - now > FUTURE_SKEW:
        problems.append("created_at is more than 5 minutes in the future")
    if problems:
        return BundleCheck("FAIL", bundle=bundle, problems=problems)
    assert created is not None  # a time that does not parse is a problem above

    warnings: list[str] = []
    rule = sub_object(strategy, "rebalance_rule")
    limit = MONTHLY_MAX_AGE_S if str(rule.get("frequency", "")).upper() == "MONTHLY" else max_age_s
    stale = (now - created).total_seconds() > limit
    if stale:
        warnings.append(f"bundle is stale: older than {limit}s")
    refs = bundle.get("evidence_refs", [])
    if not isinstance(refs, list):
        warnings.append("evidence_refs is not a list")
    else:
        for i, ref in enumerate(refs):
            try:
                check_ref(ref)
            except rawpath.RawPathError as exc:
                warnings.append(f"evidence_refs[{i}] breaks RAW_PATH_ONLY: {exc}")
    return BundleCheck("WARN" if warnings else "PASS", stale=stale, bundle=bundle, warnings=warnings)


def make_bundle(strategy: dict, created_at: str, bundle_id: str, key: bytes | None, source: dict,
                evidence_refs: list[str]) -> dict:
    """Wrap a strategy into STRATEGY_BUNDLE_V1 (for ``opsledger bundle publish``)."""
    digest = sha256_hex(strategy)
    return {
        "schema": SCHEMA,
        "bundle_id": bundle_id,
        "created_at": created_at,
        "source": source,
        "strategy": strategy,
        "evidence_refs": evidence_refs,
        "integrity": {
            "payload_sha256": digest,
            "signed_by": source.get("pc_host") if key is not None else None,
            "signature": hmac.new(key, digest.encode(), hashlib.sha256).hexdigest() if key is not None else None,
            "algorithm": "HMAC-SHA256",
        },
    }
