-- Tokens of the admin HTTP API (officepbx --http). Only a SHA-256 hash of each token is kept: the
-- token itself is printed once, when it is generated, and cannot be read back from a database
-- copy. One row per name ("admin"); every node sharing the database takes the same token.
-- +goose Up
CREATE TABLE api_tokens (
    id          BIGSERIAL   PRIMARY KEY,
    name        TEXT        NOT NULL,
    hash        TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT api_tokens_name_key UNIQUE (name)
);

-- +goose Down
DROP TABLE api_tokens;
