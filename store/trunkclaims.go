package store

import (
	"context"
	"time"
)

// A trunk that registers at its provider is registered by one node of several: the one holding
// its row of trunk_claims (claim.go) and renewed by the heartbeat.
// Providers that keep one registration per account would otherwise see the nodes take it from
// each other at every refresh.

// ClaimTrunk claims the registration of trunk for node until ttl from now. It reports false when
// another node's live claim holds it; node's own claim is renewed.
func (s *Store) ClaimTrunk(ctx context.Context, node, trunk string, ttl time.Duration) (bool, error) {
	return s.claim(ctx, "store: claim trunk "+trunk, "trunk_claims", []string{"trunk", "node_id"}, []any{trunk, node},
		ttl, claimOwnNode)
}

// ReleaseTrunk ends node's claim of trunk, if it holds it.
func (s *Store) ReleaseTrunk(ctx context.Context, node, trunk string) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	err := s.db.WithContext(ctx).Exec("DELETE FROM trunk_claims WHERE trunk = ? AND node_id = ?", trunk, node).Error
	return mapErr("store: release trunk "+trunk, err)
}
