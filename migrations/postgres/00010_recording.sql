-- Call recording: the file(s) a call was recorded into (one path per recording started, separated
-- by line breaks; '' when not recorded), and the extension setting that records every call to or
-- from the extension under default routing.
-- +goose Up
ALTER TABLE cdrs ADD COLUMN recording TEXT NOT NULL DEFAULT '';
ALTER TABLE extensions ADD COLUMN record BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
ALTER TABLE extensions DROP COLUMN record;
ALTER TABLE cdrs DROP COLUMN recording;
