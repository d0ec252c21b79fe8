package pbx

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/store"
)

// ringMirror keeps this node's ringing calls in the shared table ringing_calls while other nodes
// are live, so that a picker on another node finds them (clustercalls.go). Only the rings a pickup
// can answer count: the legs of a call being set up (b2bua.Event.Pickable), not a transfer's or a
// park ring-back's. The call core's events update what rings here, in memory and without waiting;
// one goroutine writes the changes, in a batch every ringBatchDelay at most: the calls that rang
// and stopped between two writes (most calls answered at once) cost nothing. A write that failed is retried at the next heartbeat; rows
// whose node died expire. A node alone writes nothing, and clears its rows when the others go.
type ringMirror struct {
	cs   clusterStore
	node string
	ttl  time.Duration
	live func() bool // another node is live
	log  *slog.Logger
	kick chan struct{}

	on atomic.Bool // changes are being written (the others live at the last write)

	mu    sync.Mutex
	calls map[string]map[string]ringing // call ID -> extensions it rings at
	dirty map[store.RingingKey]struct{} // changed since the last write

	// The writer's own: the rows written, and those a failed write may or may not have written
	// (written again, or deleted, by the next write).
	wrote  map[store.RingingKey]bool
	unsure map[store.RingingKey]bool
}

// ringing is a call ringing at an extension: since when, and at how many of its phones.
type ringing struct {
	since time.Time
	legs  int
}

func newRingMirror(cs clusterStore, node string, ttl time.Duration, live func() bool, log *slog.Logger) *ringMirror {
	return &ringMirror{
		cs: cs, node: node, ttl: ttl, live: live, log: log, kick: make(chan struct{}, 1),
		calls: map[string]map[string]ringing{}, dirty: map[store.RingingKey]struct{}{},
		wrote: map[store.RingingKey]bool{}, unsure: map[store.RingingKey]bool{},
	}
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
		m.changed(store.RingingKey{CallID: call, Extension: ext})
	}
	r.legs++
	exts[ext] = r
	m.mu.Unlock()
	m.poke()
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
		m.changed(store.RingingKey{CallID: call, Extension: e})
	}
	if exts != nil && len(exts) == 0 {
		delete(m.calls, call)
	}
	m.mu.Unlock()
	m.poke()
}

// changed marks a key to write, while writing is on. m.mu is held.
func (m *ringMirror) changed(k store.RingingKey) {
	if m.on.Load() {
		m.dirty[k] = struct{}{}
	}
}

// poke wakes the writer, while writing is on.
func (m *ringMirror) poke() {
	if m.on.Load() {
		m.wake()
	}
}

func (m *ringMirror) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// ringBatchDelay is how long the writer lets changes gather after the first: a call answered
// within it (most are, under load) is never written, and the others go in one batch. A picker on
// another node sees a ring this much later.
const ringBatchDelay = 100 * time.Millisecond

// run writes the changes until stop is closed. Each heartbeat wakes it too (beat): failed writes
// are retried and the other nodes' coming and going followed.
func (m *ringMirror) run(stop <-chan struct{}) {
	gather := time.NewTimer(ringBatchDelay)
	gather.Stop()
	defer gather.Stop()
	for {
		select {
		case <-stop:
			return
		case <-m.kick:
		}
		gather.Reset(ringBatchDelay)
		select {
		case <-stop:
			return
		case <-gather.C:
		}
		m.write()
	}
}

// write brings the table in line with what rings here (nothing, when this node is alone).
func (m *ringMirror) write() {
	live := m.live()
	m.mu.Lock()
	if live != m.on.Load() {
		m.on.Store(live)
		m.markAll() // switching on: write every ringing call; off: remove every row written
	}
	dirty := m.dirty
	m.dirty = map[store.RingingKey]struct{}{}
	var add []store.RingingCall
	var remove []store.RingingKey
	for k := range dirty {
		r, rings := m.calls[k.CallID][k.Extension]
		switch {
		case rings && live && (!m.wrote[k] || m.unsure[k]):
			add = append(add, store.RingingCall{CallID: k.CallID, Extension: k.Extension, StartedAt: r.since})
		case (!rings || !live) && m.wrote[k]:
			remove = append(remove, k)
		}
	}
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), clusterWriteTime)
	defer cancel()
	err := m.cs.SyncRinging(ctx, m.node, add, remove, m.ttl)
	m.settle(add, remove, err)
	if err != nil {
		m.log.Warn("ringing calls not shared with the other nodes; retried at the next heartbeat", "error", err)
		m.mu.Lock()
		for k := range dirty {
			m.dirty[k] = struct{}{}
		}
		m.mu.Unlock()
	}
}

// settle notes what a write did: after a failure its rows may or may not be there, so they count
// as written (a later stop deletes them) and unsure (a later write writes them again).
func (m *ringMirror) settle(add []store.RingingCall, remove []store.RingingKey, err error) {
	for _, r := range add {
		k := store.RingingKey{CallID: r.CallID, Extension: r.Extension}
		m.wrote[k] = true
		if err != nil {
			m.unsure[k] = true
		} else {
			delete(m.unsure, k)
		}
	}
	if err != nil {
		return // the removed rows stay written: the next write removes them again
	}
	for _, k := range remove {
		delete(m.wrote, k)
		delete(m.unsure, k)
	}
}

// markAll marks every ringing call and every row written. m.mu is held.
func (m *ringMirror) markAll() {
	for call, exts := range m.calls {
		for ext := range exts {
			m.dirty[store.RingingKey{CallID: call, Extension: ext}] = struct{}{}
		}
	}
	for k := range m.wrote {
		m.dirty[k] = struct{}{}
	}
}
