-- Busy lamps across nodes (docs/architecture.md, "Several nodes").
--
-- watched_extensions: the extensions the phones of each node watch (RFC 4235 dialog-info
-- subscriptions), written while other nodes run beside it; a node reads here which of its
-- extensions' dialogs the others want. Rows of a node that stopped renewing them expire.
-- dialog_states: the dialogs of watched extensions as each node sees them (its own calls), so that
-- a phone subscribed through one node shows the calls of the extension on every node. Rows of a
-- node that stopped renewing them expire.
-- pbxkit_notify: a change of dialog_states announces "dialogs:<extension>", one of
-- watched_extensions "watched", so that the nodes concerned read them again at once. A row's
-- renewal (an update of nothing but the expiry of a row still live: each heartbeat's RenewClaims,
-- a row written again unchanged) announces nothing, else every heartbeat would wake every node.
-- +goose Up
CREATE TABLE watched_extensions (
    node_id     TEXT        NOT NULL,
    extension   TEXT        NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (node_id, extension)
);

CREATE TABLE dialog_states (
    node_id     TEXT        NOT NULL,
    extension   TEXT        NOT NULL,
    dialog_id   TEXT        NOT NULL,
    direction   TEXT        NOT NULL,
    state       TEXT        NOT NULL,
    peer        TEXT        NOT NULL DEFAULT '',
    expires_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (node_id, extension, dialog_id)
);
CREATE INDEX dialog_states_extension ON dialog_states (extension);

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pbxkit_notify() RETURNS trigger AS $$
DECLARE
    payload TEXT;
BEGIN
    IF TG_TABLE_NAME = 'registrations' THEN
        IF TG_OP = 'DELETE' THEN
            payload := 'bindings:' || OLD.extension;
        ELSE
            payload := 'bindings:' || NEW.extension;
        END IF;
    ELSIF TG_TABLE_NAME = 'dialog_states' THEN
        IF TG_OP = 'UPDATE' THEN
            IF OLD.expires_at > now() AND (OLD.node_id, OLD.extension, OLD.dialog_id, OLD.direction, OLD.state, OLD.peer)
                    = (NEW.node_id, NEW.extension, NEW.dialog_id, NEW.direction, NEW.state, NEW.peer) THEN
                RETURN NULL; -- a live row renewed: nothing changed
            END IF;
        END IF;
        IF TG_OP = 'DELETE' THEN
            payload := 'dialogs:' || OLD.extension;
        ELSE
            payload := 'dialogs:' || NEW.extension;
        END IF;
    ELSIF TG_TABLE_NAME = 'watched_extensions' THEN
        IF TG_OP = 'UPDATE' THEN
            IF OLD.expires_at > now() AND (OLD.node_id, OLD.extension) = (NEW.node_id, NEW.extension) THEN
                RETURN NULL; -- a live row renewed: nothing changed
            END IF;
        END IF;
        payload := 'watched';
    ELSE
        payload := TG_TABLE_NAME;
    END IF;
    PERFORM pg_notify('pbxkit_' || current_schema(), payload);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
-- +goose StatementEnd

CREATE TRIGGER watched_extensions_notify AFTER INSERT OR UPDATE OR DELETE ON watched_extensions
    FOR EACH ROW EXECUTE FUNCTION pbxkit_notify();
CREATE TRIGGER dialog_states_notify AFTER INSERT OR UPDATE OR DELETE ON dialog_states
    FOR EACH ROW EXECUTE FUNCTION pbxkit_notify();

-- +goose Down
DROP TRIGGER dialog_states_notify ON dialog_states;
DROP TRIGGER watched_extensions_notify ON watched_extensions;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pbxkit_notify() RETURNS trigger AS $$
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

DROP TABLE dialog_states;
DROP TABLE watched_extensions;
