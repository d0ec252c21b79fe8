-- Several PBX nodes on one database (docs/architecture.md, "Several nodes").
--
-- nodes: one row per serving node, refreshed by its heartbeat and removed when it stops cleanly;
-- a row whose last_seen is old belongs to a node that died.
-- nonce_keys: the HMAC keys that sign digest nonces, one per generation (a time slot), shared so
-- that a nonce one node issued is accepted by every other.
-- bans: source addresses banned after failed authentications, shared by every node.
-- agent_claims: a queue agent being rung or talking, claimed by one node so that no other rings
-- it meanwhile; a claim whose node stopped renewing it expires.
-- queue_waiters: the callers waiting in each queue, on every node, in order of arrival; a row
-- whose node stopped renewing it expires (the caller's call ended with its node).
-- pbxkit_notify: changes of registrations, settings and bans are announced with NOTIFY on the
-- channel "pbxkit_<schema>", so that the other nodes drop their cached copies at once.
-- +goose Up
CREATE TABLE nodes (
    id          TEXT        PRIMARY KEY,
    sip_addr    TEXT        NOT NULL DEFAULT '',
    http_addr   TEXT        NOT NULL DEFAULT '',
    version     TEXT        NOT NULL DEFAULT '',
    started_at  TIMESTAMPTZ NOT NULL,
    last_seen   TIMESTAMPTZ NOT NULL
);

CREATE TABLE nonce_keys (
    generation  BIGINT      PRIMARY KEY,
    key         BYTEA       NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE bans (
    ip          TEXT        PRIMARY KEY,
    until       TIMESTAMPTZ NOT NULL,
    node_id     TEXT        NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE queue_waiters (
    queue       TEXT     NOT NULL,
    call_id     TEXT     NOT NULL,
    node_id     TEXT     NOT NULL,
    joined_at   TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (queue, call_id)
);

CREATE TABLE agent_claims (
    extension   TEXT        PRIMARY KEY,
    node_id     TEXT        NOT NULL,
    call_id     TEXT        NOT NULL DEFAULT '',
    expires_at  TIMESTAMPTZ NOT NULL
);

-- +goose StatementBegin
CREATE FUNCTION pbxkit_notify() RETURNS trigger AS $$
DECLARE
    payload TEXT;
BEGIN
    IF TG_TABLE_NAME = 'registrations' THEN
        IF TG_OP = 'DELETE' THEN
            payload := 'bindings:' || OLD.extension;
        ELSE
            payload := 'bindings:' || NEW.extension;
        END IF;
    ELSE
        payload := TG_TABLE_NAME;
    END IF;
    PERFORM pg_notify('pbxkit_' || current_schema(), payload);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
-- +goose StatementEnd

CREATE TRIGGER registrations_notify AFTER INSERT OR UPDATE OR DELETE ON registrations
    FOR EACH ROW EXECUTE FUNCTION pbxkit_notify();
CREATE TRIGGER settings_version_notify AFTER UPDATE ON settings_version
    FOR EACH ROW EXECUTE FUNCTION pbxkit_notify();
CREATE TRIGGER bans_notify AFTER INSERT OR UPDATE ON bans
    FOR EACH STATEMENT EXECUTE FUNCTION pbxkit_notify();

-- +goose Down
DROP TRIGGER bans_notify ON bans;
DROP TRIGGER settings_version_notify ON settings_version;
DROP TRIGGER registrations_notify ON registrations;
DROP FUNCTION pbxkit_notify();
DROP TABLE agent_claims;
DROP TABLE queue_waiters;
DROP TABLE bans;
DROP TABLE nonce_keys;
DROP TABLE nodes;
