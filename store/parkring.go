package store

import (
	"context"
	"time"
)

// Park slots and ringing calls are shared like queue agents (claim.go): a node claims a park
// slot in park_slots before it parks a call there, and keeps the extensions its calls ring at in
// ringing_calls while other nodes run beside it. A node that is asked for a slot or a ringing call
// it does not hold finds here the node to send the caller to. Rows carry an expiry that their node
// pushes forward (RenewClaims); those of a node that died run out.

// ParkedSlot is a park slot holding a call of a node.
type ParkedSlot struct {
	Slot     string
	NodeID   string
	CallID   string
	ParkedAt time.Time
}

// ClaimSlot claims park slot for call callID of node until ttl from now. It reports false when a
// live claim of another node holds the slot; a claim of the same node is taken over (the node's
// own park lot decides between its calls).
func (s *Store) ClaimSlot(ctx context.Context, node, slot, callID string, ttl time.Duration) (bool, error) {
	return s.claim(ctx, "store: claim park slot "+slot, "park_slots", []string{"slot", "node_id", "call_id", "parked_at"},
		[]any{slot, node, callID, s.now()}, ttl, claimOwnNode)
}

// ReleaseSlot ends the claim of park slot by call callID of node; a claim of another call stays.
func (s *Store) ReleaseSlot(ctx context.Context, node, slot, callID string) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	err := s.db.WithContext(ctx).Exec("DELETE FROM park_slots WHERE slot = ? AND node_id = ? AND call_id = ?",
		slot, node, callID).Error
	return mapErr("store: release park slot "+slot, err)
}

// KeepSlots deletes the park slot claims of node other than slots (the slots its park lot holds
// now): a release that failed, or a claim left by the node's run before a crash, is not kept.
func (s *Store) KeepSlots(ctx context.Context, node string, slots []string) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	q := s.db.WithContext(ctx)
	var err error
	if len(slots) == 0 {
		err = q.Exec("DELETE FROM park_slots WHERE node_id = ?", node).Error
	} else {
		err = q.Exec("DELETE FROM park_slots WHERE node_id = ? AND slot NOT IN ?", node, slots).Error
	}
	return mapErr("store: park slots", err)
}

// ParkedAt returns the live claim of park slot, or false when no node parks a call there.
func (s *Store) ParkedAt(ctx context.Context, slot string) (ParkedSlot, bool, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var rows []ParkedSlot
	err := s.db.WithContext(ctx).Raw(`SELECT slot, node_id, call_id, parked_at FROM park_slots
WHERE slot = ? AND expires_at > ?`, slot, s.now()).Scan(&rows).Error
	if err != nil || len(rows) == 0 {
		return ParkedSlot{}, false, mapErr("store: park slot "+slot, err)
	}
	return rows[0], true, nil
}

// RingingCall is a call of a node ringing at an extension; StartedAt orders the calls (the one
// ringing longest first).
type RingingCall struct {
	NodeID    string `gorm:"primaryKey"`
	CallID    string `gorm:"primaryKey"`
	Extension string `gorm:"primaryKey"`
	StartedAt time.Time
	ExpiresAt time.Time
}

// TableName is the table of ringing calls.
func (RingingCall) TableName() string { return "ringing_calls" }

// RingingKey names a row of ringing_calls.
type RingingKey struct{ CallID, Extension string }

// SyncRinging writes the changes of node's ringing calls in one transaction: the rows of add
// (expiring ttl from now) and the removal of those of remove.
func (s *Store) SyncRinging(ctx context.Context, node string, add []RingingCall, remove []RingingKey, ttl time.Duration) error {
	until := dbTime(s.now().Add(ttl))
	rows := make([]RingingCall, len(add))
	for i, r := range add {
		r.NodeID, r.StartedAt, r.ExpiresAt = node, dbTime(r.StartedAt), until
		rows[i] = r
	}
	keys := make([][]any, len(remove))
	for i, k := range remove {
		keys[i] = []any{k.CallID, k.Extension}
	}
	return syncNodeRows(ctx, s, "store: ringing calls", "ringing_calls", node, []string{"call_id", "extension"}, keys, rows,
		[]string{"started_at", "expires_at"})
}

// RingingAt returns the call ringing longest at one of exts on one of nodes, or false when none
// rings there.
func (s *Store) RingingAt(ctx context.Context, exts, nodes []string) (RingingCall, bool, error) {
	if len(exts) == 0 || len(nodes) == 0 {
		return RingingCall{}, false, nil
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var rows []RingingCall
	err := s.db.WithContext(ctx).Raw(`SELECT node_id, call_id, extension, started_at FROM ringing_calls
WHERE extension IN ? AND node_id IN ? AND expires_at > ? ORDER BY started_at, call_id LIMIT 1`,
		exts, nodes, s.now()).Scan(&rows).Error
	if err != nil || len(rows) == 0 {
		return RingingCall{}, false, mapErr("store: ringing calls", err)
	}
	return rows[0], true, nil
}
