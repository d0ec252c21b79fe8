-- Voicemail (issue 14): a mailbox per extension, switched on with `voicemail`, its PIN kept only
-- as a salted PBKDF2 hash (store/pin.go; '' = no PIN set). One row per message left; the audio is
-- a WAV file at `path` under the PBX's data directory. folder 'new' (not heard yet: the
-- message-waiting lamp is on) or 'saved' (heard or kept). voicemail_version is raised by every
-- change of messages, so that a PBX notices changes made by another process (the officepbx CLI,
-- another node) and sends message-waiting NOTIFYs (RFC 3842) for them.
-- +goose Up
ALTER TABLE extensions ADD COLUMN voicemail BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE extensions ADD COLUMN vm_pin TEXT NOT NULL DEFAULT '';

CREATE TABLE voicemail_messages (
    id          BIGSERIAL   PRIMARY KEY,
    mailbox     TEXT        NOT NULL REFERENCES extensions (number) ON DELETE CASCADE ON UPDATE CASCADE,
    caller      TEXT        NOT NULL DEFAULT '',
    caller_name TEXT        NOT NULL DEFAULT '',
    call_id     TEXT        NOT NULL DEFAULT '',
    path        TEXT        NOT NULL,
    seconds     INTEGER     NOT NULL DEFAULT 0,
    folder      TEXT        NOT NULL DEFAULT 'new',
    created_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT voicemail_messages_folder_check CHECK (folder IN ('new', 'saved'))
);
CREATE INDEX voicemail_messages_mailbox_idx ON voicemail_messages (mailbox, folder);

CREATE TABLE voicemail_version (
    id      INTEGER PRIMARY KEY,
    version BIGINT  NOT NULL
);
INSERT INTO voicemail_version (id, version) VALUES (1, 0);

-- +goose Down
DROP TABLE voicemail_version;
DROP TABLE voicemail_messages;
ALTER TABLE extensions DROP COLUMN vm_pin;
ALTER TABLE extensions DROP COLUMN voicemail;
