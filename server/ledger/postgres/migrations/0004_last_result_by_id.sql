-- A ticket's row names its last result by result_id (set by the compare-and-set
-- that records it), so writing a result line no longer updates the ticket's row
-- a second time to store the line's seq.
ALTER TABLE tickets DROP COLUMN last_result_seq;
