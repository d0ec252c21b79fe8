package store

import (
	"context"
	"sync"
	"time"
)

// Busy lamps (RFC 4235 dialog-info subscriptions) show an extension's calls on every node, not
// only those of the node its watchers subscribed through. While other nodes run beside it, a node
// keeps the extensions its phones watch in watched_extensions, and the dialogs of the extensions
// the other nodes watch in dialog_states; it reads from dialog_states the other nodes' dialogs of
// the extensions it watches. Rows carry an expiry that their node pushes forward (RenewClaims);
// those of a node that died run out, and ReleaseClaims deletes those of a node that stops.
//
// On Postgres a change of either table is announced (migration 00014): WatchDialogs tells which
// extension's dialogs changed, WatchedChanged that the watched extensions did. A row's renewal is
// not announced.

// DialogState is a dialog of an extension as a node's busy lamps see it.
type DialogState struct {
	NodeID, Extension, DialogID string
	Direction                   string // "initiator" or "recipient"
	State                       string // "trying", "proceeding", "early", "confirmed"
	Peer                        string // the other party's extension or number
	ExpiresAt                   time.Time
}

// DialogKey names a dialog of node's rows.
type DialogKey struct{ Extension, DialogID string }

// watchedRow is a row of watched_extensions.
type watchedRow struct {
	NodeID    string
	Extension string
	ExpiresAt time.Time
}

func (watchedRow) TableName() string { return "watched_extensions" }

// dialogRow is a row of dialog_states.
type dialogRow struct {
	NodeID    string
	Extension string
	DialogID  string `gorm:"column:dialog_id"`
	Direction string
	State     string
	Peer      string
	ExpiresAt time.Time
}

func (dialogRow) TableName() string { return "dialog_states" }

// SyncWatched writes the changes of the extensions node's phones watch in one transaction: the
// extensions of add (written again if present, expiring ttl from now) and the removal of those of
// remove. An extension in both is added.
func (s *Store) SyncWatched(ctx context.Context, node string, add, remove []string, ttl time.Duration) error {
	until := dbTime(s.now().Add(ttl))
	seen := make(map[string]bool, len(add))
	rows := make([]watchedRow, 0, len(add))
	for _, ext := range add {
		if !seen[ext] {
			seen[ext] = true
			rows = append(rows, watchedRow{NodeID: node, Extension: ext, ExpiresAt: until})
		}
	}
	keys := make([][]any, len(remove))
	for i, ext := range remove {
		keys[i] = []any{ext}
	}
	return syncNodeRows(ctx, s, "store: watched extensions", "watched_extensions", node, []string{"extension"}, keys, rows,
		[]string{"expires_at"})
}

// WatchedBy returns the extensions watched by one of nodes (rows live), sorted, each once; none
// for no nodes.
func (s *Store) WatchedBy(ctx context.Context, nodes []string) ([]string, error) {
	if len(nodes) == 0 {
		return nil, nil
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var exts []string
	err := s.db.WithContext(ctx).Raw(`SELECT DISTINCT extension FROM watched_extensions
WHERE node_id IN ? AND expires_at > ? ORDER BY extension`, nodes, s.now()).Scan(&exts).Error
	if err != nil {
		return nil, mapErr("store: watched extensions", err)
	}
	return exts, nil
}

// SyncDialogs writes the changes of node's dialog states in one transaction: the dialogs of put
// (node's, whatever their NodeID; inserted, or their direction, state and peer updated; expiring
// ttl from now, whatever their ExpiresAt) and the removal of those of remove. A dialog in both is
// put; of a dialog put twice the last is written.
func (s *Store) SyncDialogs(ctx context.Context, node string, put []DialogState, remove []DialogKey, ttl time.Duration) error {
	until := dbTime(s.now().Add(ttl))
	at := make(map[DialogKey]int, len(put))
	rows := make([]dialogRow, 0, len(put))
	for _, d := range put {
		r := dialogRow{NodeID: node, Extension: d.Extension, DialogID: d.DialogID, Direction: d.Direction,
			State: d.State, Peer: d.Peer, ExpiresAt: until}
		k := DialogKey{d.Extension, d.DialogID}
		if i, ok := at[k]; ok { // the last of a dialog put twice
			rows[i] = r
			continue
		}
		at[k] = len(rows)
		rows = append(rows, r)
	}
	keys := make([][]any, len(remove))
	for i, k := range remove {
		keys[i] = []any{k.Extension, k.DialogID}
	}
	return syncNodeRows(ctx, s, "store: dialog states", "dialog_states", node, []string{"extension", "dialog_id"}, keys,
		rows, []string{"direction", "state", "peer", "expires_at"})
}

// DialogsOf returns the live dialogs of the extensions exts on the nodes asked, ordered by
// extension, node and dialog: one query for every extension a node's phones watch.
func (s *Store) DialogsOf(ctx context.Context, exts, nodes []string) ([]DialogState, error) {
	if len(nodes) == 0 || len(exts) == 0 {
		return nil, nil
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var rows []dialogRow
	err := s.db.WithContext(ctx).Raw(`SELECT node_id, extension, dialog_id, direction, state, peer, expires_at
FROM dialog_states WHERE extension IN ? AND node_id IN ? AND expires_at > ? ORDER BY extension, node_id, dialog_id`,
		exts, nodes, s.now()).Scan(&rows).Error
	if err != nil {
		return nil, mapErr("store: dialog states", err)
	}
	var ds []DialogState
	for _, r := range rows {
		ds = append(ds, DialogState{NodeID: r.NodeID, Extension: r.Extension, DialogID: r.DialogID,
			Direction: r.Direction, State: r.State, Peer: r.Peer, ExpiresAt: dbTime(r.ExpiresAt)})
	}
	return ds, nil
}

// dialogWatch is the WatchDialogs callbacks.
type dialogWatch struct {
	mu   sync.Mutex
	fns  map[int]func(ext string)
	next int
}

// WatchDialogs calls f(ext) when the dialog states of extension ext changed, written by any node
// (this one included), as notifications tell: on Postgres, while the store listens (with its
// cache on, see WithCacheTTL); on SQLite never. After the listening connection was restarted,
// f("") says that anything may have changed (notifications sent meanwhile are lost). f is called
// on the goroutine that receives notifications and must not block; it may be called more than
// once for one change. stop ends the calls (one under way may still finish); f may call it.
func (s *Store) WatchDialogs(f func(ext string)) (stop func()) {
	w := &s.dialogs
	w.mu.Lock()
	if w.fns == nil {
		w.fns = map[int]func(string){}
	}
	id := w.next
	w.next++
	w.fns[id] = f
	w.mu.Unlock()
	return func() {
		w.mu.Lock()
		delete(w.fns, id)
		w.mu.Unlock()
	}
}

// tellDialogs calls the WatchDialogs callbacks for ext ("" for any).
func (s *Store) tellDialogs(ext string) {
	w := &s.dialogs
	w.mu.Lock()
	fns := make([]func(string), 0, len(w.fns))
	for _, f := range w.fns {
		fns = append(fns, f)
	}
	w.mu.Unlock()
	for _, f := range fns {
		f(ext)
	}
}

// WatchedChanged is signalled when a node (this one included) changed the extensions it watches,
// as notifications tell, and after the listening connection was restarted; like BansChanged, on
// SQLite never. Read them again with WatchedBy.
func (s *Store) WatchedChanged() <-chan struct{} { return s.notify.watched }

func (s *Store) signalWatched() {
	select {
	case s.notify.watched <- struct{}{}:
	default:
	}
}
