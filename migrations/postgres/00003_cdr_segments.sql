-- What the caller dialled beside who answered, and who talked to whom from when to when.
-- Until now callee held the Request-URI's user part, which is what dialled means from here on:
-- existing records get it copied. callee becomes the party that finally answered (or was last
-- tried): an agent rather than the queue number, the target of a forward.
-- The unique (cdr_id, seq) index is also the look-up index on cdr_id (its leading column).
-- +goose Up
ALTER TABLE cdrs ADD COLUMN dialled TEXT NOT NULL DEFAULT '';
UPDATE cdrs SET dialled = callee;

CREATE TABLE cdr_segments (
    id          BIGSERIAL PRIMARY KEY,
    cdr_id      BIGINT      NOT NULL REFERENCES cdrs (id) ON DELETE CASCADE,
    seq         INTEGER     NOT NULL,
    caller      TEXT        NOT NULL DEFAULT '',
    callee      TEXT        NOT NULL DEFAULT '',
    start_at    TIMESTAMPTZ NOT NULL,
    end_at      TIMESTAMPTZ NOT NULL,
    end_reason  TEXT        NOT NULL DEFAULT '',
    CONSTRAINT cdr_segments_cdr_id_seq_key UNIQUE (cdr_id, seq)
);

-- +goose Down
-- callee gets back its version 2 meaning, so that up again copies the right number to dialled.
-- Records whose call core left dialled empty keep their callee.
UPDATE cdrs SET callee = dialled WHERE dialled <> '';
DROP TABLE cdr_segments;
ALTER TABLE cdrs DROP COLUMN dialled;
