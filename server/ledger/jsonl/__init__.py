"""The embedded JSONL ledger backend: two append-only logs under the data root.

Everything about those files lives in this package: their paths, the
cross-process lock, replay, the in-memory index and fsck. Nothing outside it
imports these; the rest of the server sees only ``LedgerBackend``.
"""
