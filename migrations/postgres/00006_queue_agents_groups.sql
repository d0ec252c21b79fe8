-- Queues as a call centre runs them, and ring groups.
-- Queues get a wrap-up time (seconds an agent is left alone after each queue call) and a ring
-- time per attempt. Members get their place in the queue's order (position, which the linear and
-- round-robin strategies follow), a pause reason and a logged-out flag beside paused; penalty
-- becomes what it is in call centres, a tier (lower tiers are offered first). Until now the CLI
-- stored the member order as the penalty: it moves to position and penalties start at 0.
-- Ring groups are numbers that ring their members in parallel or one after the other (hunt).
-- +goose Up
ALTER TABLE queues ADD COLUMN wrapup INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queues ADD COLUMN ring_timeout INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue_members ADD COLUMN position INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue_members ADD COLUMN logged_out BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE queue_members ADD COLUMN pause_reason TEXT NOT NULL DEFAULT '';
UPDATE queue_members SET position = penalty, penalty = 0;

CREATE TABLE ring_groups (
    id              BIGSERIAL PRIMARY KEY,
    number          TEXT        NOT NULL,
    strategy        TEXT        NOT NULL DEFAULT 'parallel',
    member_timeout  INTEGER     NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    CONSTRAINT ring_groups_number_key UNIQUE (number)
);

CREATE TABLE ring_group_members (
    id          BIGSERIAL PRIMARY KEY,
    group_id    BIGINT      NOT NULL REFERENCES ring_groups (id) ON DELETE CASCADE,
    extension   TEXT        NOT NULL REFERENCES extensions (number) ON DELETE CASCADE ON UPDATE CASCADE,
    position    INTEGER     NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT ring_group_members_group_extension_key UNIQUE (group_id, extension)
);

-- +goose Down
DROP TABLE ring_group_members;
DROP TABLE ring_groups;
UPDATE queue_members SET penalty = position;
ALTER TABLE queue_members DROP COLUMN pause_reason;
ALTER TABLE queue_members DROP COLUMN logged_out;
ALTER TABLE queue_members DROP COLUMN position;
ALTER TABLE queues DROP COLUMN ring_timeout;
ALTER TABLE queues DROP COLUMN wrapup;
