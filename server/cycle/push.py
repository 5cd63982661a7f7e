"""Push preview (PUSH_RENDER_PREVIEW_V1, SPEC §3.5). Pure: renders the text; never sends.

Console only: the runner prints the text to the server's console/log. There
is no sender anywhere in the code base. A text holding a template marker
(``{{``, ``}}``, ``${``, ``$(``) or a secret-like key name is blocked and
not printed.
"""
from __future__ import annotations

import re

SCHEMA = "PUSH_RENDER_PREVIEW_V1"
CHANNEL = "CONSOLE"
DELIVERY = "CONSOLE_SIMULATED"
_TEMPLATE_MARKERS = ("{{", "}}", "${", "$(")
_SECRET_NAMES = re.compile(r"TELEGRAM_|SLACK_|SMTP_|EMAIL_|API_KEY|SECRET", re.IGNORECASE)
PREVIEW_CHARS = 500


def blocked_reason(text: str) -> str | None:
    for marker in _TEMPLATE_MARKERS:
        if marker in text:
            return f"template marker {marker!r} in text"
    match = _SECRET_NAMES.search(text)
    if match:
        return f"secret-like key name {match.group(0)!r} in text"
    return None


def render_text(outcome: dict, reco: dict | None, summary: dict | None, strategy_name: str | None) -> str:
    lines = [
        f"[opsledger live cycle] {outcome['result']} / {outcome['decision']} / {outcome['reason']}",
        f"strategy: {strategy_name or '-'}",
    ]
    if reco:
        s = reco["summary"]
        lines.append(
            f"reco: {reco['decision']} ({reco['reason']}) buy {s['buy_count']} hold {s['hold_count']} "
            f"sell {s['sell_count']} cash {s['cash_pct']}"
        )
    if summary:
        t = summary["tickets"]
        lines.append(
            f"tickets: open {t['open']} in_progress {t['in_progress']} done {t['done']} failed {t['failed']}"
        )
    return "\n".join(lines)


def build(preview_id: str, message_id: str, asof: str, text: str) -> dict:
    reason = blocked_reason(text)
    return {
        "schema": SCHEMA,
        "preview_id": preview_id,
        "asof": asof,
        "channels_evaluated": [CHANNEL],
        "delivery_actual": DELIVERY,
        "rendered": [{
            "channel": CHANNEL,
            "message_id": message_id,
            "text_preview": "" if reason else text[:PREVIEW_CHARS],
            "blocked": reason is not None,
            "blocked_reason": reason,
            "secret_injection_check": "BLOCKED" if reason else "PASS",
        }],
        "summary": {"total_render": 1, "pass": 0 if reason else 1, "blocked": 1 if reason else 0},
    }
