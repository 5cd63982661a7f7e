"""The one place a live cycle writes: bundle -> reco -> summary -> push -> receipt.

Each step is a pure function (bundle.check_bundle, reco.generate,
summary.build, push.build); this runner reads their inputs and writes their
reports through the ``ArtifactStore`` (a snapshot and a byte-identical
latest per report) and records what happened. Fail-closed: every step runs
even after an earlier one failed, and a receipt is always attempted; when
even the receipt cannot be written, ``ReceiptNotWritten`` says why.

Cycles never interleave: the store's ``exclusive("cycle")`` lock is held
for the whole run, across processes; the next caller waits its turn.
"""
from __future__ import annotations

import hashlib
import json
import logging
import sys
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any

from opsledger.server.artifacts.store import ArtifactStore
from opsledger.server.common.canonical import pretty
from opsledger.server.common.clock import Clock, file_stamp, iso
from opsledger.server.cycle import bundle as bundle_step
from opsledger.server.cycle import push as push_step
from opsledger.server.cycle import receipt as receipt_step
from opsledger.server.cycle import reco as reco_step
from opsledger.server.cycle import summary as summary_step

log = logging.getLogger("opsledger.cycle")

# A RunCycle retry token is honoured while its receipt is among this many newest.
TOKEN_RECEIPTS = 20

# (ticket counts by status, {"done", "failed", "stale_in_progress"}) at a moment
LedgerView = Callable[[datetime], tuple[dict[str, int], dict[str, int]]]


class ReceiptNotWritten(Exception):
    """Even the receipt could not be written; the message says why.

    The steps ran and wrote their reports (``refs``): this cycle happened.
    """

    def __init__(self, message: str, cycle_id: str, refs: dict[str, str]) -> None:
        self.cycle_id = cycle_id
        self.refs = refs
        super().__init__(message)


def cycle_id_for(token: str | None) -> str:
    """A fresh random cycle id, or, for a retry token, the id every retry of that
    call derives: still a version-4 UUID (the contract's form), from a hash of the token."""
    if token is None:
        return str(uuid.uuid4())
    digest = hashlib.sha256(b"opsledger-cycle\n" + token.encode("utf-8")).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class CycleRunner:
    def __init__(
        self,
        artifacts: ArtifactStore,
        ledger_view: LedgerView,
        clock: Clock | None = None,
        max_age_s: int = 86400,
        key_file: Path | None = None,
        console: Callable[[str], None] | None = None,
        span: Callable[[str], AbstractContextManager] | None = None,
    ) -> None:
        """``span(name)``: a tracing span around each step (none by default)."""
        self.artifacts = artifacts
        self.span = span or _no_span
        self.ledger_view = ledger_view
        self.clock = clock or Clock()
        self.max_age_s = max_age_s
        self.key_file = key_file
        self.console = console or _print_console
        # The pure steps; tests may swap one to inject a fault inside it.
        self.steps: dict[str, Callable[..., Any]] = {
            "bundle": bundle_step.check_bundle,
            "reco": reco_step.generate_explained,
            "summary": summary_step.build,
            "push": push_step.build,
        }

    def run(self, token: str | None = None) -> dict:
        """Run one cycle. With a retry token whose cycle already wrote its receipt,
        run nothing and return that receipt (the caller's retry of the same call)."""
        cycle_id = cycle_id_for(token)
        with self.artifacts.exclusive("cycle"):
            if token is not None:
                earlier = self._receipt_of(cycle_id)
                if earlier is not None:
                    log.info("live cycle %s: a retry of the same call; its receipt answers again", cycle_id)
                    return earlier
            return self._run_locked(cycle_id)

    def _receipt_of(self, cycle_id: str) -> dict | None:
        for ref in self.artifacts.snapshots("cycle", TOKEN_RECEIPTS):
            try:
                receipt = json.loads(self.artifacts.read(ref) or b"null")
            except ValueError:
                continue  # an unreadable snapshot is nobody's answer
            if isinstance(receipt, dict) and receipt.get("cycle_id") == cycle_id:
                return receipt
        return None

    def _read_latest_json(self, kind: str) -> dict | None:
        raw = self.artifacts.read_latest(kind)
        return None if raw is None else json.loads(raw)

    def _run_locked(self, cycle_id: str) -> dict:
        now = self.clock.now()
        asof, stamp = iso(now), file_stamp(now)
        state = receipt_step.StepState()
        check = bundle_step.BundleCheck("NO_BUNDLE")
        reco = summary = None

        # Outside any step: the previous receipt (for the summary's last_cycle).
        last_cycle = None
        try:
            last_cycle = self._read_latest_json("cycle")
            if last_cycle is not None and not isinstance(last_cycle, dict):
                raise ValueError("previous receipt is not a JSON object")
        except Exception as exc:  # noqa: BLE001 - fail-closed
            state.system_error = f"reading the previous receipt: {_error(exc)}"
            last_cycle = None

        # 1. bundle
        with self.span("cycle bundle"):
            try:
                raw = self.artifacts.read_latest("bundle")
                key = Path(self.key_file).read_bytes().strip() if self.key_file else None
                check = self.steps["bundle"](raw, now, self.max_age_s, key, self.artifacts.check_ref)
            except Exception as exc:  # noqa: BLE001
                check = bundle_step.BundleCheck("FAIL", problems=[f"bundle step error: {_error(exc)}"])
            state.bundle_decision, state.bundle_stale = check.decision, check.stale
            state.bundle_error = check.error_text()

        # 2. reco
        with self.span("cycle reco"):
            try:
                try:
                    previous = self._read_latest_json("reco")
                except ValueError:
                    previous = None  # an unreadable previous reco: treat every pick as new
                reco, state.reco_blocked = self.steps["reco"](check, previous, str(uuid.uuid4()), asof)
                state.reco_decision, state.reco_reason = reco["decision"], reco["reason"]
                latest, snap = self.artifacts.write_pair("reco", stamp, lambda _ref: pretty(reco))
                state.refs.update(reco_latest=latest, reco_snapshot=snap)
            except Exception as exc:  # noqa: BLE001
                state.reco_failed = _error(exc)
                # A report that was not written is no report: the summary and the
                # push say so instead of describing it.
                reco = None

        # 3. ops summary
        with self.span("cycle summary"):
            try:
                counts, recent = self.ledger_view(now)
                summary = self.steps["summary"](
                    asof, counts, recent, check, reco, state.refs.get("reco_snapshot"), last_cycle, state.reco_failed
                )
                latest, snap = self.artifacts.write_pair("summary", stamp, lambda _ref: pretty(summary))
                state.refs.update(summary_latest=latest, summary_snapshot=snap)
            except Exception as exc:  # noqa: BLE001
                state.summary_failed = _error(exc)
                summary = None

        # 4. push (console only)
        with self.span("cycle push"):
            try:
                strategy = (check.bundle or {}).get("strategy") if isinstance(check.bundle, dict) else None
                name = strategy.get("name") if isinstance(strategy, dict) else None
                text = push_step.render_text(receipt_step.outcome(state), reco, summary, name)
                preview = self.steps["push"](str(uuid.uuid4()), str(uuid.uuid4()), asof, text)
                latest, snap = self.artifacts.write_pair("preview", stamp, lambda _ref: pretty(preview))
                state.refs.update(preview_latest=latest, preview_snapshot=snap)
                rendered = preview["rendered"][0]
                if rendered["blocked"]:
                    # Not delivered, even to the console: the push did not happen.
                    log.warning("push blocked, not printed: %s", rendered["blocked_reason"])
                    state.push_failed = f"message blocked by the secret check: {rendered['blocked_reason']}"
                else:
                    self.console(text)
            except Exception as exc:  # noqa: BLE001
                state.push_failed = _error(exc)

        if state.system_error:
            log.error("live cycle system error: %s", state.system_error)

        # 5. receipt: always attempted
        with self.span("cycle receipt"):
            receipts: dict[str, dict] = {}

            def render(snapshot_ref: str) -> bytes:
                receipts["r"] = receipt_step.build(cycle_id, asof, state, snapshot_ref)
                return pretty(receipts["r"])

            try:
                self.artifacts.write_pair("cycle", stamp, render)
            except Exception as exc:  # noqa: BLE001
                message = f"live cycle {cycle_id}: receipt could not be written: {_error(exc)}"
                print(message, file=sys.stderr, flush=True)
                log.error(message)
                raise ReceiptNotWritten(message, cycle_id, dict(state.refs)) from exc
        r = receipts["r"]
        log.info("live cycle %s: %s / %s / %s -> %s", cycle_id, r["result"], r["decision"], r["reason"], r["snapshot_ref"])
        return r


def _no_span(_name: str) -> AbstractContextManager:
    return nullcontext()


def _print_console(text: str) -> None:
    """The only delivery there is: the server's own console."""
    print("---- push (CONSOLE_SIMULATED) ----\n" + text + "\n----", flush=True)
