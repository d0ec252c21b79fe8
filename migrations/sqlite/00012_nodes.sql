-- Several PBX nodes on one database (docs/architecture.md, "Several nodes"). SQLite serves one
-- node; the tables exist so that the code is the same on both databases (the node lists itself,
-- nonces are signed with a stored key, bans survive a restart). Postgres also announces changes
-- with NOTIFY; SQLite keeps the settings_version poll.
-- +goose Up
CREATE TABLE nodes (
    id          TEXT     PRIMARY KEY,
    sip_addr    TEXT     NOT NULL DEFAULT '',
    http_addr   TEXT     NOT NULL DEFAULT '',
    version     TEXT     NOT NULL DEFAULT '',
    started_at  DATETIME NOT NULL,
    last_seen   DATETIME NOT NULL
);

CREATE TABLE nonce_keys (
    generation  INTEGER  PRIMARY KEY,
    key         BLOB     NOT NULL,
    created_at  DATETIME NOT NULL
);

CREATE TABLE bans (
    ip          TEXT     PRIMARY KEY,
    until       DATETIME NOT NULL,
    node_id     TEXT     NOT NULL DEFAULT '',
    created_at  DATETIME NOT NULL
);

CREATE TABLE queue_waiters (
    queue       TEXT     NOT NULL,
    call_id     TEXT     NOT NULL,
    node_id     TEXT     NOT NULL,
    joined_at   DATETIME NOT NULL,
    expires_at  DATETIME NOT NULL,
    PRIMARY KEY (queue, call_id)
);

CREATE TABLE agent_claims (
    extension   TEXT     PRIMARY KEY,
    node_id     TEXT     NOT NULL,
    call_id     TEXT     NOT NULL DEFAULT '',
    expires_at  DATETIME NOT NULL
);

-- +goose Down
DROP TABLE agent_claims;
DROP TABLE queue_waiters;
DROP TABLE bans;
DROP TABLE nonce_keys;
DROP TABLE nodes;
