-- A counter that every change of extension settings raises, so that a PBX notices changes made
-- by another process (the officepbx CLI, another node) at its next look-up instead of when its
-- cache entries expire.
-- +goose Up
CREATE TABLE settings_version (
    id      INTEGER PRIMARY KEY,
    version BIGINT  NOT NULL
);
INSERT INTO settings_version (id, version) VALUES (1, 0);

-- +goose Down
DROP TABLE settings_version;
