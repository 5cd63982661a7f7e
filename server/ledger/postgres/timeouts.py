"""How long a replica waits on a silent database: the one home of every
connection setting that bounds it.

A partition closes nothing: packets stop and a socket waits for a reply that
never comes (Linux retransmits for ~15 minutes). These libpq settings make
each side give up within seconds instead:

* ``connect_timeout``: a connection attempt to an unreachable host;
* ``keepalives*``: an idle connection (LISTEN, a held advisory lock, a query
  waiting for its answer) is probed after 1 s and dropped after 1 unanswered
  probe;
* ``tcp_user_timeout``: data sent and not acknowledged for 2 s breaks the
  connection (a query or COMMIT sent into a dead link);
* the same keepalive / user timeout asked of the server for this session
  (``options``), so PostgreSQL drops a cut-off replica's session, and the
  locks it held, in seconds too;
* ``idle_in_transaction_session_timeout``: a replica cut off mid-transaction
  releases its row and line-number locks after 3 s, so other replicas wait at
  most that long for it (``lock_timeout`` is longer than that on purpose);
* ``statement_timeout``: nothing the server runs for a call takes longer.

The pool's own reconnection gives up after ``RECONNECT_S`` (psycopg_pool
doubles its wait between attempts, 1 s, 2 s, 4 s, …, up to five minutes by
default): a connection lost in an outage is not retried on a clock that has
grown to many seconds by the time the database is back. Once it gives up,
the next call that needs a connection opens one at once.

TCP settings are ignored on a unix socket (the local default), where a dead
server closes the socket anyway.

Worst case for a call on a replica cut off from the database: the pooled
connection's query fails after ``tcp_user_timeout`` / keepalives (~2 s), then
the batch is retried once on a fresh connection whose connect attempt fails
after ``CONNECT_TIMEOUT_S``; the call answers UNAVAILABLE within about
``DETECT_BOUND_S``. The LISTEN connection's once-a-second probe fails on the
same clock, which is what turns health to NOT_SERVING.
"""
from __future__ import annotations

CONNECT_TIMEOUT_S = 2
RECONNECT_S = 2.0
TCP_USER_TIMEOUT_MS = 2000
KEEPALIVES_IDLE_S = 1
KEEPALIVES_INTERVAL_S = 1
KEEPALIVES_COUNT = 1
STATEMENT_TIMEOUT_MS = 15000
LOCK_TIMEOUT_MS = 6000
IDLE_IN_TRANSACTION_MS = 3000
DETECT_BOUND_S = 5
# A COMMIT sent and not answered: how long the batch looks for its own record before
# answering COMMIT_OUTCOME_UNKNOWN (the caller retries with its idempotency key).
COMMIT_SETTLE_S = 3


def _server_side(statements: bool, lock_timeout_ms: int) -> str:
    opts = [f"tcp_keepalives_idle={KEEPALIVES_IDLE_S}", f"tcp_keepalives_interval={KEEPALIVES_INTERVAL_S}",
            f"tcp_keepalives_count={KEEPALIVES_COUNT}", f"tcp_user_timeout={TCP_USER_TIMEOUT_MS}",
            f"idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}"]
    if statements:
        opts += [f"statement_timeout={STATEMENT_TIMEOUT_MS}", f"lock_timeout={lock_timeout_ms}"]
    return " ".join(f"-c {o}" for o in opts)


def network_kwargs() -> dict:
    """libpq's client-side bounds only (connect, keepalives, TCP user timeout): for
    the operator's tools (migrate, export, import), whose transactions may sit idle
    between statements while files are written, so no server-side session limits."""
    return {k: v for k, v in connect_kwargs().items() if k != "options"}


def connect_kwargs(statements: bool = True, lock_timeout_ms: int = LOCK_TIMEOUT_MS) -> dict:
    """libpq parameters for a server-side connection. ``statements=False`` for a
    connection whose statements legitimately wait long (taking an advisory lock
    another replica holds): it keeps every network bound, not the statement one."""
    return {
        "connect_timeout": CONNECT_TIMEOUT_S,
        "keepalives": 1,
        "keepalives_idle": KEEPALIVES_IDLE_S,
        "keepalives_interval": KEEPALIVES_INTERVAL_S,
        "keepalives_count": KEEPALIVES_COUNT,
        "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
        "options": _server_side(statements, lock_timeout_ms),
    }
