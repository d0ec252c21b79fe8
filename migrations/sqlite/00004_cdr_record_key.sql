-- A key per call record, chosen by the PBX when the call ends, so that a record written again
-- (replayed from the PBX's spool after a crash or a database outage) is stored once. Older rows
-- have none; NULLs do not collide in a unique index.
-- +goose Up
ALTER TABLE cdrs ADD COLUMN record_key TEXT;
CREATE UNIQUE INDEX cdrs_record_key_key ON cdrs (record_key);

-- +goose Down
DROP INDEX cdrs_record_key_key;
ALTER TABLE cdrs DROP COLUMN record_key;
