-- WatchTickets' order: committed batches in commit order. A batch takes the
-- single row of ledger_batch_head last (after the heads of the logs it
-- writes) and holds it to its COMMIT, so batch numbers follow commit order
-- with no gaps: a reader that sees batch N has seen every batch before it.
CREATE TABLE ledger_batch_head (
    one       boolean PRIMARY KEY DEFAULT true CHECK (one),
    batches   bigint  NOT NULL,
    -- ties a revision token to this ledger (a token of another is refused)
    ledger_id uuid    NOT NULL DEFAULT gen_random_uuid()
);

-- Each batch's lines: requests (req_lo, req_hi] then results (res_lo, res_hi].
CREATE TABLE ledger_batches (
    batch_no bigint PRIMARY KEY,
    req_lo   bigint NOT NULL,
    req_hi   bigint NOT NULL,
    res_lo   bigint NOT NULL,
    res_hi   bigint NOT NULL,
    CHECK (req_lo <= req_hi AND res_lo <= res_hi)
);

-- Lines written before this migration form one batch: every request, then
-- every result (a ticket's request is always before its results).
INSERT INTO ledger_batches
SELECT 1, 0, r.lines, 0, s.lines
FROM ledger_heads r, ledger_heads s
WHERE r.log = 'requests' AND s.log = 'results' AND r.lines + s.lines > 0;
INSERT INTO ledger_batch_head (batches) SELECT count(*) FROM ledger_batches;
