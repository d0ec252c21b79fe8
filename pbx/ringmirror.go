package pbx

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/store"
)

// ringMirror keeps this node's ringing calls in the shared table ringing_calls (a mirror, while
// other nodes are live), so that a picker on another node finds them (clustercalls.go). Only the
// rings a pickup can answer count: the legs of a call being set up (b2bua.Event.Pickable), not a
// transfer's or a park ring-back's; an extension rings until its last phone stops. The call
// core's events update it without waiting; calls answered within the mirror's batch delay (most)
// are never written.
type ringMirror struct {
	*mirror[store.RingingKey, time.Time] // the rows: call ringing at extension -> since

	mu    sync.Mutex
	calls map[string]map[string]ringing // call ID -> extensions it rings at
}

// ringing is a call ringing at an extension: since when, and at how many of its phones.
type ringing struct {
	since time.Time
	legs  int
}

func newRingMirror(cs clusterStore, node string, ttl time.Duration, live func() bool, log *slog.Logger) *ringMirror {
	sync := func(ctx context.Context, put map[store.RingingKey]time.Time, remove []store.RingingKey) error {
		add := make([]store.RingingCall, 0, len(put))
		for k, since := range put {
			add = append(add, store.RingingCall{CallID: k.CallID, Extension: k.Extension, StartedAt: since})
		}
		return cs.SyncRinging(ctx, node, add, remove, ttl)
	}
	return &ringMirror{mirror: newMirror("ringing calls", sync, live, log), calls: map[string]map[string]ringing{}}
}

// callEvent follows which extensions each call rings at. It must not block: the call core calls
// it. A nil mirror does nothing.
func (m *ringMirror) callEvent(ev b2bua.Event) {
	if m == nil {
		return
	}
	switch ev.Kind {
	case b2bua.CallLegRinging:
		if ev.Pickable {
			m.ring(ev.CallID, ev.Leg, ev.Time)
		}
	case b2bua.CallLegEnded:
		m.stop(ev.CallID, ev.Leg)
	case b2bua.CallAnswered, b2bua.CallTransferred, b2bua.CallParked, b2bua.CallRetrieved, b2bua.CallEnded:
		m.stop(ev.CallID, "")
	}
}

// ring notes one more phone of ext ringing for call.
func (m *ringMirror) ring(call, ext string, at time.Time) {
	if ext == "" {
		return
	}
	m.mu.Lock()
	exts := m.calls[call]
	if exts == nil {
		exts = map[string]ringing{}
		m.calls[call] = exts
	}
	r, ok := exts[ext]
	if !ok {
		r.since = at
		m.set(store.RingingKey{CallID: call, Extension: ext}, at)
	}
	r.legs++
	exts[ext] = r
	m.mu.Unlock()
}

// stop notes one phone of ext no longer ringing for call, or every phone when ext is "". The
// extension stops ringing with its last phone.
func (m *ringMirror) stop(call, ext string) {
	m.mu.Lock()
	exts := m.calls[call]
	for e, r := range exts {
		if ext != "" && e != ext {
			continue
		}
		if r.legs--; ext != "" && r.legs > 0 {
			exts[e] = r
			continue
		}
		delete(exts, e)
		m.del(store.RingingKey{CallID: call, Extension: e})
	}
	if exts != nil && len(exts) == 0 {
		delete(m.calls, call)
	}
	m.mu.Unlock()
}
