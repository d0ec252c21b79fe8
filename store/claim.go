package store

import (
	"context"
	"strings"
	"time"
)

// One rule claims every shared row a node holds for a while (a queue agent, a park slot, a trunk's
// registration): one INSERT ... ON CONFLICT DO UPDATE ... WHERE expired, atomic on both databases
// without a lock held across a round trip. The row carries an expiry that its node pushes forward
// while it holds it (RenewClaims, from its heartbeat); when the node dies its claims run out.

// claimMode says whose live claim a new one may take over.
type claimMode int

const (
	claimExpiredOnly claimMode = iota // only an expired claim: the same node's other claims are refused too
	claimOwnNode                      // an expired claim, or any of the same node (its own bookkeeping decides)
)

// claim writes a claim into table until ttl from now: cols[0] is the key, cols holds node_id, vals
// the values of cols (expires_at is added). It reports false when a live claim it may not take
// over holds the key.
func (s *Store) claim(ctx context.Context, op, table string, cols []string, vals []any, ttl time.Duration, mode claimMode) (bool, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	now := s.now()
	set := make([]string, 0, len(cols))
	for _, c := range cols[1:] {
		set = append(set, c+" = excluded."+c)
	}
	set = append(set, "expires_at = excluded.expires_at")
	when := table + ".expires_at <= ?"
	if mode == claimOwnNode {
		when += " OR " + table + ".node_id = excluded.node_id"
	}
	q := "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ", expires_at) VALUES (" +
		strings.Repeat("?, ", len(cols)) + "?) ON CONFLICT (" + cols[0] + ") DO UPDATE SET " +
		strings.Join(set, ", ") + " WHERE " + when
	res := s.db.WithContext(ctx).Exec(q, append(vals, dbTime(now.Add(ttl)), now)...)
	if res.Error != nil {
		return false, mapErr(op, res.Error)
	}
	return res.RowsAffected == 1, nil
}
