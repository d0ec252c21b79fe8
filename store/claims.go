package store

import (
	"context"
	"time"
)

// Queue agents are claimed cluster-wide (claim.go): a node rings an agent only after it has
// claimed the agent's row in agent_claims, and releases it when the agent is free again; when a
// node dies its claims run out and the agents can be rung again.

// ClaimAgent claims agent ext for a call of node until ttl from now. It reports false when
// another live claim holds the agent (another node, or another call of this one).
func (s *Store) ClaimAgent(ctx context.Context, node, ext, callID string, ttl time.Duration) (bool, error) {
	return s.claim(ctx, "store: claim agent "+ext, "agent_claims", []string{"extension", "node_id", "call_id"},
		[]any{ext, node, callID}, ttl, claimExpiredOnly)
}

// ReleaseAgent ends the claim of agent ext by callID; a claim of another call stays.
func (s *Store) ReleaseAgent(ctx context.Context, node, ext, callID string) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	err := s.db.WithContext(ctx).Exec("DELETE FROM agent_claims WHERE extension = ? AND node_id = ? AND call_id = ?",
		ext, node, callID).Error
	return mapErr("store: release agent "+ext, err)
}

// claimTables are the tables whose rows a node holds while it renews them: agent claims, waiting
// callers, park slots and ringing calls (parkring.go), watched extensions and dialog states
// (dialogs.go), trunk registrations (trunkclaims.go).
var claimTables = []string{"agent_claims", "queue_waiters", "park_slots", "ringing_calls",
	"watched_extensions", "dialog_states", "trunk_claims"}

// RenewClaims pushes the expiry of every row node holds in claimTables to ttl from now.
func (s *Store) RenewClaims(ctx context.Context, node string, ttl time.Duration) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	until := dbTime(s.now().Add(ttl))
	for _, table := range claimTables {
		if err := s.db.WithContext(ctx).Exec("UPDATE "+table+" SET expires_at = ? WHERE node_id = ?", until, node).Error; err != nil {
			return mapErr("store: renew "+table, err)
		}
	}
	return nil
}

// ReleaseClaims deletes every row node holds in claimTables (a node that stops cleanly).
func (s *Store) ReleaseClaims(ctx context.Context, node string) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	for _, table := range claimTables {
		if err := s.db.WithContext(ctx).Exec("DELETE FROM "+table+" WHERE node_id = ?", node).Error; err != nil {
			return mapErr("store: release "+table, err)
		}
	}
	return nil
}

// Queue waiting lists are shared the same way: each caller waiting in a queue, on any node, is a
// row of queue_waiters, ordered by the time it joined; its node renews it (RenewClaims) and a row
// whose node died expires, so that the callers behind move up.

// JoinQueue adds the call callID of node to the waiting list of queue, unless maxLen (> 0)
// callers wait there already, and returns its position (1: first).
func (s *Store) JoinQueue(ctx context.Context, node, queue, callID string, maxLen int, ttl time.Duration) (pos int, ok bool, err error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	now := s.now()
	if maxLen > 0 {
		var n int64
		err := s.db.WithContext(ctx).Raw("SELECT count(*) FROM queue_waiters WHERE queue = ? AND expires_at > ?", queue, now).Scan(&n).Error
		if err != nil {
			return 0, false, mapErr("store: join queue "+queue, err)
		}
		if n >= int64(maxLen) {
			return 0, false, nil
		}
	}
	err = s.db.WithContext(ctx).Exec(`INSERT INTO queue_waiters (queue, call_id, node_id, joined_at, expires_at)
VALUES (?, ?, ?, ?, ?)`, queue, callID, node, now, dbTime(now.Add(ttl))).Error
	if err != nil {
		return 0, false, mapErr("store: join queue "+queue, err)
	}
	pos, err = s.queuePosition(ctx, queue, callID)
	return pos, true, err
}

// QueuePosition returns the position of callID in the waiting list of queue among the callers
// whose rows live (1: first), or 0 when it is not there.
func (s *Store) QueuePosition(ctx context.Context, queue, callID string) (int, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	return s.queuePosition(ctx, queue, callID)
}

func (s *Store) queuePosition(ctx context.Context, queue, callID string) (int, error) {
	var n int64
	err := s.db.WithContext(ctx).Raw(`SELECT count(*) FROM queue_waiters w JOIN queue_waiters me
    ON me.queue = w.queue AND me.call_id = ?
WHERE w.queue = ? AND (w.expires_at > ? OR w.call_id = me.call_id)
    AND (w.joined_at < me.joined_at OR (w.joined_at = me.joined_at AND w.call_id <= me.call_id))`,
		callID, queue, s.now()).Scan(&n).Error
	return int(n), mapErr("store: position in queue "+queue, err)
}

// QueueWaiting returns how many callers wait in queue on every node (live rows) and since when
// the first of them waits (zero when none does).
func (s *Store) QueueWaiting(ctx context.Context, queue string) (int, time.Time, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	now := s.now()
	var first []struct{ JoinedAt time.Time }
	err := s.db.WithContext(ctx).Raw(`SELECT joined_at FROM queue_waiters WHERE queue = ? AND expires_at > ?
ORDER BY joined_at LIMIT 1`, queue, now).Scan(&first).Error
	if err != nil || len(first) == 0 {
		return 0, time.Time{}, mapErr("store: waiting in queue "+queue, err)
	}
	var n int64
	err = s.db.WithContext(ctx).Raw("SELECT count(*) FROM queue_waiters WHERE queue = ? AND expires_at > ?", queue, now).
		Scan(&n).Error
	if err != nil {
		return 0, time.Time{}, mapErr("store: waiting in queue "+queue, err)
	}
	return int(n), first[0].JoinedAt.UTC(), nil
}

// LeaveQueue takes callID out of the waiting list of queue.
func (s *Store) LeaveQueue(ctx context.Context, queue, callID string) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	err := s.db.WithContext(ctx).Exec("DELETE FROM queue_waiters WHERE queue = ? AND call_id = ?", queue, callID).Error
	return mapErr("store: leave queue "+queue, err)
}
