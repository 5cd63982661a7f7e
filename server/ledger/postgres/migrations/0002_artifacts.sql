-- Artifacts (bundle, reco, summary, preview, receipts, reaper reports) by
-- their contract path, so every replica reads what any replica wrote.
CREATE TABLE artifacts (
    path       text        PRIMARY KEY,
    bytes      bytea       NOT NULL,
    sha256     text        NOT NULL,
    -- the bytes parse as a JSON object (only those snapshots are listed)
    json_object boolean    NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now()
);
-- Snapshot listings: the newest files of one folder first.
CREATE INDEX artifacts_by_folder ON artifacts (
    (substring(path from '^(.*)/[^/]*$')), path DESC);
