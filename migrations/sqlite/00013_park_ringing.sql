-- Park slots and call pickup across nodes (docs/architecture.md, "Several nodes").
-- SQLite serves one node: the tables exist so that the code is the same on both databases.
--
-- park_slots: a park slot holding a call, claimed by the node that keeps the call; a slot whose
-- node stopped renewing it expires (the parked call ended with its node). A node retrieving a
-- slot it does not hold finds here the node to send the retrieval to.
-- ringing_calls: the extensions each call is ringing at, on nodes that have others beside them;
-- a node picking up a call it does not hold finds here the node to send the pickup to. Rows of a
-- node that stopped renewing them expire.
-- +goose Up
CREATE TABLE park_slots (
    slot        TEXT        PRIMARY KEY,
    node_id     TEXT        NOT NULL,
    call_id     TEXT        NOT NULL,
    parked_at   DATETIME    NOT NULL,
    expires_at  DATETIME    NOT NULL
);

CREATE TABLE ringing_calls (
    call_id     TEXT        NOT NULL,
    extension   TEXT        NOT NULL,
    node_id     TEXT        NOT NULL,
    started_at  DATETIME    NOT NULL,
    expires_at  DATETIME    NOT NULL,
    PRIMARY KEY (node_id, call_id, extension)
);
CREATE INDEX ringing_calls_extension ON ringing_calls (extension, started_at);

-- +goose Down
DROP TABLE ringing_calls;
DROP TABLE park_slots;
