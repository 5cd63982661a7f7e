"""The SQL the PostgreSQL ledger sends, in one place (plain text, no ORM).

Every write statement takes arrays (``unnest``) so one statement carries a
whole batch of commands; at most one command per ticket is in a batch.
"""
from __future__ import annotations

from opsledger.server.ledger.machine import STATUSES

CHANNEL = "opsledger_open"  # NOTIFY'd once per committed batch that added OPEN tickets
COUNT_SHARDS = 16

# A batch's writes go to the server in one pipeline (no answer awaited between
# them), so no statement takes a value read back by an earlier one: line numbers
# are computed in SQL from the head row this transaction already moved.

# Number a batch's lines: the head row stays locked until COMMIT.
TAKE_LINES = "UPDATE ledger_heads SET lines = lines + %s WHERE log = %s"

# Submits: the request lines (numbered after the head's old value), then their
# current-status rows. An idempotency key stored by another replica after this
# batch looked is a unique violation: the batch runs again and then sees it.
INSERT_REQUESTS = """
WITH ins AS (
    INSERT INTO ticket_requests (line_no, request_id, request_type, requested_epoch, idempotency_key, line)
    SELECT h.lines - %s + n, r, t, e, k, l
    FROM ledger_heads h,
         unnest(%s::uuid[], %s::text[], %s::bigint[], %s::text[], %s::bytea[]) WITH ORDINALITY AS u(r, t, e, k, l, n)
    WHERE h.log = 'requests'
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

# The compare-and-set: a row moves only from the status the machine table
# names for the event; RETURNING says which did. The result lines follow.
CAS_TICKETS = """
UPDATE tickets t SET status = u.to_status, last_result_id = u.result_id,
       last_processor_id = u.processor_id, last_epoch = u.epoch
FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::uuid[], %s::text[], %s::bigint[])
     AS u(request_id, from_status, to_status, result_id, processor_id, epoch)
WHERE t.request_id = u.request_id AND t.status = u.from_status
RETURNING t.request_id::text
"""
# The first parameter: how many of the batch's result lines come at or after
# this statement's first one (the head already counts them all). The ticket's
# row already names its last result (last_result_id, set by the compare-and-set).
INSERT_RESULTS = """
INSERT INTO ticket_results (line_no, result_id, request_id, status, processed_epoch, line)
SELECT h.lines - %s + n, i, r, s, e, l
FROM ledger_heads h,
     unnest(%s::uuid[], %s::uuid[], %s::text[], %s::bigint[], %s::bytea[]) WITH ORDINALITY AS u(i, r, s, e, l, n)
WHERE h.log = 'results'
"""

# Exact counts: this connection's shard (no queue on one hot row).
ADD_COUNTS = f"""
INSERT INTO ticket_counts (status, request_type, shard, n)
SELECT s, t, (pg_backend_pid() %% {COUNT_SHARDS})::smallint, d
FROM unnest(%s::text[], %s::text[], %s::bigint[]) AS u(s, t, d)
ORDER BY s, t
ON CONFLICT (status, request_type, shard) DO UPDATE SET n = ticket_counts.n + excluded.n
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
# The batch's spans are read off the heads it moved (an empty span is (0, 0)).
INSERT_BATCH = """
WITH b AS (UPDATE ledger_batch_head SET batches = batches + 1 RETURNING batches)
INSERT INTO ledger_batches
SELECT b.batches,
       CASE WHEN %(nreq)s = 0 THEN 0 ELSE r.lines - %(nreq)s END, CASE WHEN %(nreq)s = 0 THEN 0 ELSE r.lines END,
       CASE WHEN %(nres)s = 0 THEN 0 ELSE s.lines - %(nres)s END, CASE WHEN %(nres)s = 0 THEN 0 ELSE s.lines END
FROM b, ledger_heads r, ledger_heads s WHERE r.log = 'requests' AND s.log = 'results'
"""
# The writing transaction's id and session, to settle a COMMIT whose answer is lost.
XACT = "SELECT pg_current_xact_id()::text, pg_backend_pid()"
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
