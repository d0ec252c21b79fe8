-- Pickup groups: an extension may answer, with the group pickup code (*8), a call ringing at any
-- extension that has the same non-empty pickup_group.
-- +goose Up
ALTER TABLE extensions ADD COLUMN pickup_group TEXT NOT NULL DEFAULT '';
CREATE INDEX extensions_pickup_group ON extensions (pickup_group);

-- +goose Down
DROP INDEX extensions_pickup_group;
ALTER TABLE extensions DROP COLUMN pickup_group;
