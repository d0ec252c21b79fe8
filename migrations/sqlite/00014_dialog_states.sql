-- Busy lamps across nodes (docs/architecture.md, "Several nodes").
-- SQLite serves one node: the tables exist so that the code is the same on both databases.
--
-- watched_extensions: the extensions the phones of each node watch (RFC 4235 dialog-info
-- subscriptions), written while other nodes run beside it; a node reads here which of its
-- extensions' dialogs the others want. Rows of a node that stopped renewing them expire.
-- dialog_states: the dialogs of watched extensions as each node sees them (its own calls), so that
-- a phone subscribed through one node shows the calls of the extension on every node. Rows of a
-- node that stopped renewing them expire.
-- +goose Up
CREATE TABLE watched_extensions (
    node_id     TEXT     NOT NULL,
    extension   TEXT     NOT NULL,
    expires_at  DATETIME NOT NULL,
    PRIMARY KEY (node_id, extension)
);

CREATE TABLE dialog_states (
    node_id     TEXT     NOT NULL,
    extension   TEXT     NOT NULL,
    dialog_id   TEXT     NOT NULL,
    direction   TEXT     NOT NULL,
    state       TEXT     NOT NULL,
    peer        TEXT     NOT NULL DEFAULT '',
    expires_at  DATETIME NOT NULL,
    PRIMARY KEY (node_id, extension, dialog_id)
);
CREATE INDEX dialog_states_extension ON dialog_states (extension);

-- +goose Down
DROP TABLE dialog_states;
DROP TABLE watched_extensions;
