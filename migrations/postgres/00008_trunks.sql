-- Outbound trunks: SIP providers the PBX sends calls for numbers that are no extension to, and
-- whose calls it takes in. The password is stored in the clear: digest authentication toward a
-- provider needs it (or an HA1 for the provider's realm, which is only known from its first
-- challenge), unlike extensions' credentials, which the PBX only checks. reg_* is what the PBX
-- last saw of its registration, for `officepbx trunk list`.
-- +goose Up
CREATE TABLE trunks (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT        NOT NULL,
    host        TEXT        NOT NULL,
    username    TEXT        NOT NULL DEFAULT '',
    password    TEXT        NOT NULL DEFAULT '',
    register    BOOLEAN     NOT NULL DEFAULT FALSE,
    caller_id   TEXT        NOT NULL DEFAULT '',
    prefix      TEXT        NOT NULL DEFAULT '',
    reg_state   TEXT        NOT NULL DEFAULT '',
    reg_detail  TEXT        NOT NULL DEFAULT '',
    reg_at      TIMESTAMPTZ NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT trunks_name_key UNIQUE (name)
);

-- +goose Down
DROP TABLE trunks;
