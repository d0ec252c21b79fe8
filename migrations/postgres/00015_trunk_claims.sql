-- Trunk registrations across nodes (docs/architecture.md, "Several nodes"): each trunk that
-- registers at its provider is registered by one node, the one holding its row here; the row
-- expires when its node stops renewing it, and another node takes the trunk over.
-- +goose Up
CREATE TABLE trunk_claims (
    trunk       TEXT        PRIMARY KEY,
    node_id     TEXT        NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE trunk_claims;
