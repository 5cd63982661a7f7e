-- The ledger in PostgreSQL: the two append-only logs (the contract's JSONL
-- lines, byte for byte), the current status of every ticket, and exact counts.

-- Each log's line count. A batch takes the row's lock to number its lines and
-- holds it to its COMMIT: line numbers follow commit order with no gaps, so
-- "ticket_results.jsonl:line<N>" means one line forever, on every replica.
CREATE TABLE ledger_heads (
    log   text   PRIMARY KEY CHECK (log IN ('requests', 'results')),
    lines bigint NOT NULL
);
INSERT INTO ledger_heads VALUES ('requests', 0), ('results', 0);

-- One row per TICKET_REQUEST_V1 line; line_no is its 1-based line in the log.
CREATE TABLE ticket_requests (
    seq             bigint GENERATED ALWAYS AS IDENTITY (MINVALUE 0 START WITH 0) PRIMARY KEY,
    line_no         bigint NOT NULL UNIQUE,
    request_id      uuid   NOT NULL UNIQUE,
    request_type    text   NOT NULL,
    requested_epoch bigint NOT NULL,
    idempotency_key text   UNIQUE,
    line            bytea  NOT NULL  -- the JSONL line without its newline
);

-- One row per TICKET_RESULT_V1 line.
CREATE TABLE ticket_results (
    seq             bigint GENERATED ALWAYS AS IDENTITY (MINVALUE 0 START WITH 0) PRIMARY KEY,
    line_no         bigint NOT NULL UNIQUE,
    result_id       uuid   NOT NULL UNIQUE,
    request_id      uuid   NOT NULL REFERENCES ticket_requests (request_id),
    status          text   NOT NULL CHECK (status IN ('IN_PROGRESS', 'DONE', 'FAILED')),
    processed_epoch bigint NOT NULL,
    line            bytea  NOT NULL
);
-- A ticket's results (GetTicket, the decide step's history of a ticket).
CREATE INDEX ticket_results_by_request ON ticket_results (request_id, seq);
-- Even a writer that skipped the compare-and-set cannot record a ticket
-- twice in progress or finish it twice.
CREATE UNIQUE INDEX ticket_results_one_in_progress ON ticket_results (request_id) WHERE status = 'IN_PROGRESS';
CREATE UNIQUE INDEX ticket_results_one_final ON ticket_results (request_id) WHERE status IN ('DONE', 'FAILED');

-- Append-only: the logs are never rewritten.
CREATE FUNCTION opsledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;
CREATE TRIGGER ticket_requests_append_only BEFORE UPDATE OR DELETE ON ticket_requests
    FOR EACH ROW EXECUTE FUNCTION opsledger_append_only();
CREATE TRIGGER ticket_results_append_only BEFORE UPDATE OR DELETE ON ticket_results
    FOR EACH ROW EXECUTE FUNCTION opsledger_append_only();

-- The current status of every ticket (what the JSONL store keeps in memory).
-- board_key = requested_epoch << 32 | seq: the board's order and page cursor.
CREATE TABLE tickets (
    request_id        uuid   PRIMARY KEY REFERENCES ticket_requests (request_id),
    seq               bigint NOT NULL UNIQUE,
    board_key         bigint NOT NULL UNIQUE,
    request_type      text   NOT NULL,
    status            text   NOT NULL CHECK (status IN ('OPEN', 'IN_PROGRESS', 'DONE', 'FAILED')),
    last_result_seq   bigint,
    last_result_id    uuid,
    last_processor_id text,
    last_epoch        bigint  -- processed_at of the last result
);
-- ConsumeNext: the oldest OPEN ticket, O(log n) whatever the number of tickets.
CREATE INDEX tickets_open ON tickets (seq) WHERE status = 'OPEN';
-- Board pages: one ordered scan per status (merged), per status and type.
CREATE INDEX tickets_by_status ON tickets (status, board_key);
CREATE INDEX tickets_by_status_type ON tickets (status, request_type, board_key);
-- Reaper: IN_PROGRESS tickets by the age of their last result.
CREATE INDEX tickets_stale ON tickets (last_epoch, board_key) WHERE status = 'IN_PROGRESS';
-- Summary: tickets finished since a time.
CREATE INDEX tickets_finished ON tickets (status, last_epoch) WHERE status IN ('DONE', 'FAILED');

-- Exact counts without count(*): per (status, type), spread over shards so
-- concurrent writers (each its own shard) do not queue on one row.
CREATE TABLE ticket_counts (
    status       text     NOT NULL,
    request_type text     NOT NULL,
    shard        smallint NOT NULL,
    n            bigint   NOT NULL,
    PRIMARY KEY (status, request_type, shard)
);
