"""``opsledger bundle publish``: wrap a strategy into STRATEGY_BUNDLE_V1 and publish it.

The bundle is checked exactly as a cycle will check it before anything is
written; a bundle that would FAIL is refused. Written latest + snapshot.
"""
from __future__ import annotations

import socket
import subprocess
import uuid
from pathlib import Path

from opsledger.server.artifacts.store import ArtifactStore
from opsledger.server.common import strict_json
from opsledger.server.common.canonical import pretty
from opsledger.server.common.clock import Clock, file_stamp, iso
from opsledger.server.cycle import bundle as bundle_step


class PublishRefused(ValueError):
    pass


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def publish(artifacts: ArtifactStore, strategy_path: Path, key_file: Path | None = None,
            clock: Clock | None = None) -> tuple[str, str, dict]:
    clock = clock or Clock()
    try:
        strategy = strict_json.loads(Path(strategy_path).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise PublishRefused(f"{strategy_path}: not a JSON strategy ({exc})") from None
    if not isinstance(strategy, dict):
        raise PublishRefused(f"{strategy_path}: a strategy must be a JSON object")
    if strategy.get("schema") == bundle_step.SCHEMA:
        strategy = strategy.get("strategy")  # a whole bundle given: re-wrap its strategy
    key = Path(key_file).read_bytes().strip() if key_file else None
    now = clock.now()
    source = {
        "pc_host": socket.gethostname(),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_branch": _git("rev-parse", "--abbrev-ref", "HEAD"),
    }
    bundle = bundle_step.make_bundle(strategy, iso(now), str(uuid.uuid4()), key, source, [])
    data = pretty(bundle)
    check = bundle_step.check_bundle(data, now, key=key, check_ref=artifacts.check_ref)
    if not check.valid:
        raise PublishRefused("bundle would FAIL: " + "; ".join(check.problems))
    latest, snapshot = artifacts.write_pair("bundle", file_stamp(now), lambda _ref: data)
    return latest, snapshot, bundle
