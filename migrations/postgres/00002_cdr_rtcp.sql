-- What each side said of the audio it received (its RTCP reception reports) and the round trip
-- between the PBX and it, per call leg.
-- +goose Up
ALTER TABLE cdrs ADD COLUMN a_reported_lost      BIGINT           NOT NULL DEFAULT 0;
ALTER TABLE cdrs ADD COLUMN a_reported_jitter_ms DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE cdrs ADD COLUMN a_rtt_ms             DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE cdrs ADD COLUMN b_reported_lost      BIGINT           NOT NULL DEFAULT 0;
ALTER TABLE cdrs ADD COLUMN b_reported_jitter_ms DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE cdrs ADD COLUMN b_rtt_ms             DOUBLE PRECISION NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE cdrs DROP COLUMN b_rtt_ms;
ALTER TABLE cdrs DROP COLUMN b_reported_jitter_ms;
ALTER TABLE cdrs DROP COLUMN b_reported_lost;
ALTER TABLE cdrs DROP COLUMN a_rtt_ms;
ALTER TABLE cdrs DROP COLUMN a_reported_jitter_ms;
ALTER TABLE cdrs DROP COLUMN a_reported_lost;
