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

	calls   map[string]map[string]int // call ID -> extensions it rings at -> at how many phones
	callsMu sync.Mutex
}

func newRingMirror(cs clusterStore, node string, ttl time.Duration, live func() bool, log *slog.Logger) *ringMirror {
	syncRows := func(ctx context.Context, put map[store.RingingKey]time.Time, remove []store.RingingKey) error {
		add := make([]store.RingingCall, 0, len(put))
		for k, since := range put {
			add = append(add, store.RingingCall{CallID: k.CallID, Extension: k.Extension, StartedAt: since})
		}
		return cs.SyncRinging(ctx, node, add, remove, ttl)
	}
	return &ringMirror{mirror: newMirror("ringing calls", syncRows, live, log), calls: map[string]map[string]int{}}
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
	m.callsMu.Lock()
	exts := m.calls[call]
	if exts == nil {
		exts = map[string]int{}
		m.calls[call] = exts
	}
	if exts[ext] == 0 {
		m.set(store.RingingKey{CallID: call, Extension: ext}, at)
	}
	exts[ext]++
	m.callsMu.Unlock()
}

// stop notes one phone of ext no longer ringing for call, or every phone when ext is "". The
// extension stops ringing with its last phone.
func (m *ringMirror) stop(call, ext string) {
	m.callsMu.Lock()
	exts := m.calls[call]
	for e, legs := range exts {
		if ext != "" && e != ext {
			continue
		}
		if legs--; ext != "" && legs > 0 {
			exts[e] = legs
			continue
		}
		delete(exts, e)
		m.del(store.RingingKey{CallID: call, Extension: e})
	}
	if exts != nil && len(exts) == 0 {
		delete(m.calls, call)
	}
	m.callsMu.Unlock()
}
