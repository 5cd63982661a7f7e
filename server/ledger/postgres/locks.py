"""PostgreSQL advisory lock keys: one namespace for opsledger, one key per job.

Two-int form ``pg_advisory_lock(NAMESPACE, key)`` so the keys cannot collide
with another application's single-bigint locks on the same database.
"""
from __future__ import annotations

NAMESPACE = 0x0B5_1ED9  # "opsledger"

MIGRATE = 1
REAPER = 2
CYCLE = 3
ARTIFACT_NAMES = 4  # transaction-level: choosing a snapshot's name

KEYS = {"migrate": MIGRATE, "reaper": REAPER, "cycle": CYCLE}
