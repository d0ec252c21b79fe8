package store

import (
	"context"
	"time"
)

// Queue agents are claimed cluster-wide: a node rings an agent only after it has claimed the
// agent's row in agent_claims, and releases it when the agent is free again. A claim carries an
// expiry that its node pushes forward while it holds it (RenewClaims, from its heartbeat); when a
// node dies its claims run out and the agents can be rung again. One INSERT ... ON CONFLICT DO
// UPDATE ... WHERE expired does the claim atomically on both databases, without a lock held
// across a round trip.

// ClaimAgent claims agent ext for a call of node until ttl from now. It reports false when
// another live claim holds the agent (another node, or another call of this one).
func (s *Store) ClaimAgent(ctx context.Context, node, ext, callID string, ttl time.Duration) (bool, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	now := s.now()
	res := s.db.WithContext(ctx).Exec(`INSERT INTO agent_claims (extension, node_id, call_id, expires_at)
VALUES (?, ?, ?, ?)
ON CONFLICT (extension) DO UPDATE SET node_id = excluded.node_id, call_id = excluded.call_id,
    expires_at = excluded.expires_at
WHERE agent_claims.expires_at <= ?`, ext, node, callID, dbTime(now.Add(ttl)), now)
	if res.Error != nil {
		return false, mapErr("store: claim agent "+ext, res.Error)
	}
	return res.RowsAffected == 1, nil
}

// ReleaseAgent ends the claim of agent ext by callID; a claim of another call stays.
func (s *Store) ReleaseAgent(ctx context.Context, node, ext, callID string) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	err := s.db.WithContext(ctx).Exec("DELETE FROM agent_claims WHERE extension = ? AND node_id = ? AND call_id = ?",
		ext, node, callID).Error
	return mapErr("store: release agent "+ext, err)
}

// RenewClaims pushes the expiry of every claim of node to ttl from now.
func (s *Store) RenewClaims(ctx context.Context, node string, ttl time.Duration) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	err := s.db.WithContext(ctx).Exec("UPDATE agent_claims SET expires_at = ? WHERE node_id = ?",
		dbTime(s.now().Add(ttl)), node).Error
	return mapErr("store: renew agent claims", err)
}

// ReleaseClaims ends every claim of node (a node that stops cleanly).
func (s *Store) ReleaseClaims(ctx context.Context, node string) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	err := s.db.WithContext(ctx).Exec("DELETE FROM agent_claims WHERE node_id = ?", node).Error
	return mapErr("store: release agent claims", err)
}
