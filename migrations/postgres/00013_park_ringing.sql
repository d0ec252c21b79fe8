-- Park slots and call pickup across nodes (docs/architecture.md, "Several nodes").
--
-- park_slots: a park slot holding a call, claimed by the node that keeps the call; a slot whose
-- node stopped renewing it expires (the parked call ended with its node). A node retrieving a
-- slot it does not hold finds here the node to send the retrieval to.
-- ringing_calls: the extensions each call is ringing at, on nodes that have others beside them;
-- a node picking up a call it does not hold finds here the node to send the pickup to. Rows of a
-- node that stopped renewing them expire.
-- bans_lifted: a ban deleted (lifted with officepbx ban rm or DELETE /api/bans/IP, or ended) is
-- announced like a new one, so every node drops it at once. Per row: a statement that deletes
-- nothing (each node's reading of the bans deletes the ended ones) announces nothing.
-- +goose Up
CREATE TABLE park_slots (
    slot        TEXT        PRIMARY KEY,
    node_id     TEXT        NOT NULL,
    call_id     TEXT        NOT NULL,
    parked_at   TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE ringing_calls (
    call_id     TEXT        NOT NULL,
    extension   TEXT        NOT NULL,
    node_id     TEXT        NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (node_id, call_id, extension)
);
CREATE INDEX ringing_calls_extension ON ringing_calls (extension, started_at);

CREATE TRIGGER bans_lifted AFTER DELETE ON bans
    FOR EACH ROW EXECUTE FUNCTION pbxkit_notify();

-- +goose Down
DROP TRIGGER bans_lifted ON bans;
DROP TABLE ringing_calls;
DROP TABLE park_slots;
