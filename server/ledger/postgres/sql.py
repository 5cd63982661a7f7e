"""The SQL the PostgreSQL ledger sends, in one place (plain text, no ORM).

Every write statement takes arrays (``unnest``) so one statement carries a
whole batch of commands; at most one command per ticket is in a batch.
"""
from __future__ import annotations

from opsledger.server.ledger.machine import STATUSES

CHANNEL = "opsledger_open"  # NOTIFY'd once per committed batch that added OPEN tickets
COUNT_SHARDS = 16

# A batch's writes are a few statements sent in one pipeline (no answer awaited
# between them), so none takes a value read back by an earlier one: line numbers
# come from the head row each statement moves (RETURNING), or that an earlier
# statement of the transaction moved. A head row stays locked until COMMIT.

# Submits: take the request lines, store them, and their current-status rows. An
# idempotency key stored by another replica after this batch looked is a unique
# violation: the batch runs again and then sees it.
INSERT_REQUESTS = """
WITH h AS (UPDATE ledger_heads SET lines = lines + %(n)s WHERE log = 'requests' RETURNING lines),
ins AS (
    INSERT INTO ticket_requests (line_no, request_id, request_type, requested_epoch, idempotency_key, line)
    SELECT h.lines - %(n)s + u.n, r, t, e, k, l
    FROM h, unnest(%(ids)s::uuid[], %(types)s::text[], %(epochs)s::bigint[], %(keys)s::text[], %(lines)s::bytea[])
         WITH ORDINALITY AS u(r, t, e, k, l, n)
    RETURNING request_id, seq, requested_epoch, request_type
)
INSERT INTO tickets (request_id, seq, board_key, request_type, status)
SELECT request_id, seq, (requested_epoch << 32) | seq, request_type, 'OPEN' FROM ins
"""

REQUESTS_BY_KEY = "SELECT idempotency_key, line FROM ticket_requests WHERE idempotency_key = ANY(%s::text[])"

# Transitions: lock the named tickets in one order (no deadlock between two
# batches), read their state for the decide step; their history only when a
# decision needs it (a refusal's details, a retry token).
LOCK_TICKETS = """
SELECT request_id::text, status, request_type
FROM tickets WHERE request_id = ANY(%s::uuid[])
ORDER BY request_id FOR UPDATE
"""

HISTORY = "SELECT request_id::text, line FROM ticket_results WHERE request_id = ANY(%s::uuid[]) ORDER BY line_no"
CLAIMED_WITH = """
SELECT result_id::text, request_id::text FROM ticket_results
WHERE result_id = ANY(%s::uuid[]) AND status = 'IN_PROGRESS'
"""

# ConsumeNext: the oldest OPEN tickets nobody else holds (index tickets_open).
# With each its request line: the claim's answer carries the ticket's request.
CLAIM_ANY = """
SELECT t.request_id::text, t.request_type, t.seq, r.line
FROM tickets t JOIN ticket_requests r ON r.seq = t.seq
WHERE t.status = 'OPEN' AND t.request_id <> ALL(%s::uuid[])
ORDER BY t.seq LIMIT %s FOR UPDATE OF t SKIP LOCKED
"""
CLAIM_TYPES = """
SELECT t.request_id::text, t.request_type, t.seq, r.line
FROM tickets t JOIN ticket_requests r ON r.seq = t.seq
WHERE t.status = 'OPEN' AND t.request_type = ANY(%s::text[]) AND t.request_id <> ALL(%s::uuid[])
ORDER BY t.seq LIMIT %s FOR UPDATE OF t SKIP LOCKED
"""
# The requests of tickets a retried claim answers again (their claim was an earlier batch).
REQUESTS_OF = "SELECT request_id::text, line FROM ticket_requests WHERE request_id = ANY(%s::uuid[])"

# One round of transitions (a ticket moved twice in a batch is in two rounds): the
# compare-and-set moves a row only from the status the machine table names for
# the event, and the result lines are stored beside it; the statement answers how
# many rows moved (every one was locked and decided on: a miss is a broken
# invariant and the batch is not committed). ``take``: how many result lines the
# batch adds (the first round takes them all, later rounds 0); ``left``: how
# many of them come at or after this round's first one.
MOVE = """
WITH h AS (UPDATE ledger_heads SET lines = lines + %(take)s WHERE log = 'results' RETURNING lines),
moved AS (
    UPDATE tickets t SET status = u.to_status, last_result_id = u.result_id,
           last_processor_id = u.processor_id, last_epoch = u.epoch
    FROM unnest(%(ids)s::uuid[], %(from)s::text[], %(to)s::text[], %(results)s::uuid[], %(who)s::text[],
                %(epochs)s::bigint[]) AS u(request_id, from_status, to_status, result_id, processor_id, epoch)
    WHERE t.request_id = u.request_id AND t.status = u.from_status
    RETURNING 1
),
ins AS (
    INSERT INTO ticket_results (line_no, result_id, request_id, status, processed_epoch, line)
    SELECT h.lines - %(left)s + u.n, i, r, s, e, l
    FROM h, unnest(%(results)s::uuid[], %(ids)s::uuid[], %(to)s::text[], %(epochs)s::bigint[], %(lines)s::bytea[])
         WITH ORDINALITY AS u(i, r, s, e, l, n)
)
SELECT count(*) FROM moved
"""

# Last in a batch: the exact counts (this connection's shard, so concurrent
# writers do not queue on one hot row), then WatchTickets' batch row, whose head
# is taken last and held to COMMIT: batch numbers follow commit order with no
# gaps. Its spans are read off the log heads this batch moved (an empty span is
# (0, 0)). Answers the transaction's id and session, to settle a COMMIT whose
# answer is lost.
FINISH = f"""
WITH c AS (
    INSERT INTO ticket_counts (status, request_type, shard, n)
    SELECT s, t, (pg_backend_pid() %% {COUNT_SHARDS})::smallint, d
    FROM unnest(%(statuses)s::text[], %(types)s::text[], %(deltas)s::bigint[]) AS u(s, t, d)
    ORDER BY s, t
    ON CONFLICT (status, request_type, shard) DO UPDATE SET n = ticket_counts.n + excluded.n
),
b AS (UPDATE ledger_batch_head SET batches = batches + 1 RETURNING batches)
INSERT INTO ledger_batches
SELECT b.batches,
       CASE WHEN %(nreq)s = 0 THEN 0 ELSE r.lines - %(nreq)s END, CASE WHEN %(nreq)s = 0 THEN 0 ELSE r.lines END,
       CASE WHEN %(nres)s = 0 THEN 0 ELSE s.lines - %(nres)s END, CASE WHEN %(nres)s = 0 THEN 0 ELSE s.lines END
FROM b, ledger_heads r, ledger_heads s WHERE r.log = 'requests' AND s.log = 'results'
RETURNING pg_current_xact_id()::text, pg_backend_pid()
"""

NOTIFY = f"SELECT pg_notify('{CHANNEL}', %s)"  # payload: the sending replica (it woke its own already)

# A batch whose COMMIT got no answer is settled by its transaction id: committed,
# aborted, or still in progress (its session alive, the COMMIT perhaps still
# arriving). Such a session is ended only while it still runs that transaction
# (a pid is reused once its session is gone), waiting up to %s ms for it to go.
XACT_STATUS = "SELECT pg_xact_status(%s::xid8)"
END_SESSION = ("SELECT pg_terminate_backend(pid, %s) FROM pg_stat_activity "
               "WHERE pid = %s AND backend_xid = %s::xid8::xid")

# -- reads ----------------------------------------------------------------------------
COUNTS = "SELECT status, sum(n)::bigint FROM ticket_counts GROUP BY status"
TOTAL = ("SELECT coalesce(sum(n), 0)::bigint FROM ticket_counts "
         "WHERE status = ANY(%s::text[]) AND request_type = ANY(%s::text[])")


def page_keys(statuses: tuple[str, ...], types: tuple[str, ...]) -> str:
    """One ordered, limited sub-select per status (per status and type when
    types are given), merged: each is a short index scan (a Merge Append)
    however many tickets are in the other statuses."""
    parts = []  # type: ignore[var-annotated]
    for status in statuses or STATUSES:
        assert status in STATUSES  # the names come from the machine, never from a caller's text
        if types:
            for _t in types:
                parts.append(f"(SELECT board_key FROM tickets WHERE status = '{status}' AND request_type = %(t{len(parts)})s"
                             " AND board_key < %(before)s ORDER BY board_key DESC LIMIT %(n)s)")
        else:
            parts.append(f"(SELECT board_key FROM tickets WHERE status = '{status}'"
                         " AND board_key < %(before)s ORDER BY board_key DESC LIMIT %(n)s)")
    return ("SELECT board_key FROM (" + " UNION ALL ".join(parts)
            + ") AS merged ORDER BY board_key DESC LIMIT %(n)s")


PAGE_ROWS = """
SELECT t.board_key, r.line, x.line
FROM tickets t JOIN ticket_requests r ON r.seq = t.seq
LEFT JOIN ticket_results x ON x.result_id = t.last_result_id
WHERE t.board_key = ANY(%s::bigint[])
ORDER BY t.board_key DESC
"""

TICKET_REQUEST = "SELECT line FROM ticket_requests WHERE request_id = %s::uuid"
TICKET_RESULTS = "SELECT line, line_no FROM ticket_results WHERE request_id = %s::uuid ORDER BY line_no"

FINISHED_SINCE = """
SELECT status, count(*) FROM tickets
WHERE status IN ('DONE', 'FAILED') AND last_epoch >= %s GROUP BY status
"""
STALE = """
SELECT t.request_id::text, t.request_type, x.line
FROM tickets t JOIN ticket_results x ON x.result_id = t.last_result_id
WHERE t.status = 'IN_PROGRESS' AND t.last_epoch < %s
ORDER BY t.last_epoch, t.board_key LIMIT %s
"""
STALE_COUNT = "SELECT count(*) FROM tickets WHERE status = 'IN_PROGRESS' AND last_epoch < %s"

REQUEST_LINES = "SELECT line FROM ticket_requests ORDER BY line_no"
RESULT_LINES = "SELECT line FROM ticket_results ORDER BY line_no"
RESULT_LINE = "SELECT line FROM ticket_results WHERE line_no = %s"
LINE_COUNTS = "SELECT log, lines FROM ledger_heads"

# -- events (WatchTickets): batches in commit order ----------------------------------------
# The database's oid joins the stored id: a database made from a template (a copy) is another ledger.
LEDGER_ID = ("SELECT ledger_id::text || '/' || (SELECT oid FROM pg_database WHERE datname = current_database()), "
             "batches FROM ledger_batch_head")
BATCHES_FROM = ("SELECT batch_no, req_lo, req_hi, res_lo, res_hi FROM ledger_batches "
                "WHERE batch_no >= %s ORDER BY batch_no LIMIT %s")
BATCH_SIZE = "SELECT req_hi - req_lo + res_hi - res_lo FROM ledger_batches WHERE batch_no = %s"
EVENT_REQUESTS = ("SELECT line_no, line, request_type FROM ticket_requests "
                  "WHERE line_no > %s AND line_no <= %s ORDER BY line_no")
EVENT_RESULTS = ("SELECT r.line_no, r.line, q.request_type FROM ticket_results r "
                 "JOIN ticket_requests q USING (request_id) "
                 "WHERE r.line_no > %s AND r.line_no <= %s ORDER BY r.line_no")
