package pbx

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// mirror keeps rows of this node in a table the nodes share, while other nodes are live: its
// owner sets and deletes rows in memory, without waiting (set, del); one goroutine (run) writes
// the changes, gathered for mirrorBatchDelay after the first, in one call of sync. A row set and
// deleted between two writes costs nothing. A write that failed is retried at the next wake (the
// heartbeat wakes every mirror); rows whose node died expire with it. A node alone writes
// nothing, and deletes its rows when the others go. The ringing calls (ringmirror.go), the
// extensions watched and the dialogs of busy lamps (presenceshare.go) are mirrors.
type mirror[K comparable, V comparable] struct {
	name     string
	syncRows func(ctx context.Context, put map[K]V, remove []K) error
	live     func() bool // another node is live
	log      *slog.Logger
	kick     chan struct{}

	on atomic.Bool // changes are being written (the others were live at the last write)

	mu    sync.Mutex
	want  map[K]V        // the rows as they should be
	dirty map[K]struct{} // changed since the last write

	// The writer's own: the rows written, and those a failed write may or may not have written
	// (written again, or deleted, by the next write).
	wrote  map[K]V
	unsure map[K]bool
}

// mirrorBatchDelay is how long a mirror's writer lets changes gather after the first: a row that
// comes and goes within it (a call answered at once) is never written, and the others go in one
// batch. The other nodes see a change this much later.
const mirrorBatchDelay = 100 * time.Millisecond

func newMirror[K comparable, V comparable](name string, syncRows func(context.Context, map[K]V, []K) error,
	live func() bool, log *slog.Logger) *mirror[K, V] {
	return &mirror[K, V]{
		name: name, syncRows: syncRows, live: live, log: log, kick: make(chan struct{}, 1),
		want: map[K]V{}, dirty: map[K]struct{}{}, wrote: map[K]V{}, unsure: map[K]bool{},
	}
}

// set makes k's row v.
func (m *mirror[K, V]) set(k K, v V) {
	m.mu.Lock()
	if old, ok := m.want[k]; !ok || old != v {
		m.want[k] = v
		m.changed(k)
	}
	m.mu.Unlock()
	m.poke()
}

// del deletes k's row.
func (m *mirror[K, V]) del(k K) {
	m.mu.Lock()
	if _, ok := m.want[k]; ok {
		delete(m.want, k)
		m.changed(k)
	}
	m.mu.Unlock()
	m.poke()
}

// changed marks a key to write, while writing is on. m.mu is held.
func (m *mirror[K, V]) changed(k K) {
	if m.on.Load() {
		m.dirty[k] = struct{}{}
	}
}

// poke wakes the writer, while writing is on.
func (m *mirror[K, V]) poke() {
	if m.on.Load() {
		m.wake()
	}
}

// wake wakes the writer: the heartbeat does, so that failed writes are retried and the other
// nodes' coming and going followed.
func (m *mirror[K, V]) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// run writes the changes until stop is closed.
func (m *mirror[K, V]) run(stop <-chan struct{}) {
	gather := time.NewTimer(mirrorBatchDelay)
	gather.Stop()
	defer gather.Stop()
	for {
		select {
		case <-stop:
			return
		case <-m.kick:
		}
		gather.Reset(mirrorBatchDelay)
		select {
		case <-stop:
			return
		case <-gather.C:
		}
		m.write()
	}
}

// write brings the table in line with the rows wanted (none, when this node is alone).
func (m *mirror[K, V]) write() {
	live := m.live()
	m.mu.Lock()
	if live != m.on.Load() {
		m.on.Store(live)
		m.markAll() // switching on: write every row; off: delete every row written
	}
	dirty := m.dirty
	m.dirty = map[K]struct{}{}
	put := map[K]V{}
	var remove []K
	for k := range dirty {
		v, wanted := m.want[k]
		was, written := m.wrote[k]
		switch {
		case wanted && live && (!written || was != v || m.unsure[k]):
			put[k] = v
		case (!wanted || !live) && written:
			remove = append(remove, k)
		}
	}
	m.mu.Unlock()
	if len(put) == 0 && len(remove) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterWriteTime)
	defer cancel()
	err := m.syncRows(ctx, put, remove)
	m.settle(put, remove, err)
	if err != nil {
		m.log.Warn(m.name+" not shared with the other nodes; retried at the next heartbeat", "error", err)
		m.mu.Lock()
		for k := range dirty {
			m.dirty[k] = struct{}{}
		}
		m.mu.Unlock()
	}
}

// settle notes what a write did: after a failure its rows may or may not be there, so they count
// as written (a later delete deletes them) and unsure (a later write writes them again).
func (m *mirror[K, V]) settle(put map[K]V, remove []K, err error) {
	for k, v := range put {
		m.wrote[k] = v
		if err != nil {
			m.unsure[k] = true
		} else {
			delete(m.unsure, k)
		}
	}
	if err != nil {
		// The removed rows stay written (the next write removes them again) and unsure: set again
		// meanwhile, they are written again, for they may be gone.
		for _, k := range remove {
			m.unsure[k] = true
		}
		return
	}
	for _, k := range remove {
		delete(m.wrote, k)
		delete(m.unsure, k)
	}
}

// markAll marks every row wanted and every row written. m.mu is held.
func (m *mirror[K, V]) markAll() {
	for k := range m.want {
		m.dirty[k] = struct{}{}
	}
	for k := range m.wrote {
		m.dirty[k] = struct{}{}
	}
}
