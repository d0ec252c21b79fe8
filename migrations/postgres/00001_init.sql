-- +goose Up
CREATE TABLE extensions (
    id               BIGSERIAL PRIMARY KEY,
    number           TEXT        NOT NULL,
    name             TEXT        NOT NULL DEFAULT '',
    realm            TEXT        NOT NULL DEFAULT '',
    ha1_md5          TEXT        NOT NULL DEFAULT '',
    ha1_sha256       TEXT        NOT NULL DEFAULT '',
    enabled          BOOLEAN     NOT NULL DEFAULT TRUE,
    dnd              BOOLEAN     NOT NULL DEFAULT FALSE,
    forward_always   TEXT        NOT NULL DEFAULT '',
    forward_busy     TEXT        NOT NULL DEFAULT '',
    forward_noanswer TEXT        NOT NULL DEFAULT '',
    ring_timeout     INTEGER     NOT NULL DEFAULT 0,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    CONSTRAINT extensions_number_key UNIQUE (number)
);

CREATE TABLE registrations (
    id          BIGSERIAL PRIMARY KEY,
    extension   TEXT             NOT NULL REFERENCES extensions (number) ON DELETE CASCADE ON UPDATE CASCADE,
    contact     TEXT             NOT NULL,
    source      TEXT             NOT NULL DEFAULT '',
    transport   TEXT             NOT NULL DEFAULT '',
    expires_at  TIMESTAMPTZ      NOT NULL,
    call_id     TEXT             NOT NULL DEFAULT '',
    cseq        BIGINT           NOT NULL DEFAULT 0,
    user_agent  TEXT             NOT NULL DEFAULT '',
    q           DOUBLE PRECISION NOT NULL DEFAULT 0,
    node_id     TEXT             NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ      NOT NULL,
    updated_at  TIMESTAMPTZ      NOT NULL,
    CONSTRAINT registrations_extension_contact_key UNIQUE (extension, contact)
);
CREATE INDEX registrations_expires_at_idx ON registrations (expires_at);

CREATE TABLE cdrs (
    id             BIGSERIAL PRIMARY KEY,
    call_id        TEXT             NOT NULL,
    caller         TEXT             NOT NULL DEFAULT '',
    callee         TEXT             NOT NULL DEFAULT '',
    source         TEXT             NOT NULL DEFAULT '',
    start_at       TIMESTAMPTZ      NOT NULL,
    answer_at      TIMESTAMPTZ,
    end_at         TIMESTAMPTZ      NOT NULL,
    duration_sec   INTEGER          NOT NULL DEFAULT 0,
    billable_sec   INTEGER          NOT NULL DEFAULT 0,
    disposition    TEXT             NOT NULL,
    status         INTEGER          NOT NULL DEFAULT 0,
    hangup_by      TEXT             NOT NULL DEFAULT '',
    reason         TEXT             NOT NULL DEFAULT '',
    node_id        TEXT             NOT NULL DEFAULT '',
    a_packets      BIGINT           NOT NULL DEFAULT 0,
    a_bytes        BIGINT           NOT NULL DEFAULT 0,
    a_lost         BIGINT           NOT NULL DEFAULT 0,
    a_jitter_ms    DOUBLE PRECISION NOT NULL DEFAULT 0,
    b_packets      BIGINT           NOT NULL DEFAULT 0,
    b_bytes        BIGINT           NOT NULL DEFAULT 0,
    b_lost         BIGINT           NOT NULL DEFAULT 0,
    b_jitter_ms    DOUBLE PRECISION NOT NULL DEFAULT 0,
    created_at     TIMESTAMPTZ      NOT NULL
);
CREATE INDEX cdrs_call_id_idx ON cdrs (call_id);
CREATE INDEX cdrs_start_at_idx ON cdrs (start_at);

CREATE TABLE queues (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT        NOT NULL,
    strategy    TEXT        NOT NULL DEFAULT 'ringall',
    max_wait    INTEGER     NOT NULL DEFAULT 0,
    max_len     INTEGER     NOT NULL DEFAULT 0,
    announce    INTEGER     NOT NULL DEFAULT 0,
    music       TEXT        NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT queues_name_key UNIQUE (name)
);

CREATE TABLE queue_members (
    id          BIGSERIAL PRIMARY KEY,
    queue_id    BIGINT      NOT NULL REFERENCES queues (id) ON DELETE CASCADE,
    extension   TEXT        NOT NULL REFERENCES extensions (number) ON DELETE CASCADE ON UPDATE CASCADE,
    penalty     INTEGER     NOT NULL DEFAULT 0,
    paused      BOOLEAN     NOT NULL DEFAULT FALSE,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT queue_members_queue_extension_key UNIQUE (queue_id, extension)
);

-- +goose Down
DROP TABLE queue_members;
DROP TABLE queues;
DROP TABLE cdrs;
DROP TABLE registrations;
DROP TABLE extensions;
