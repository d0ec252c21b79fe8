package pbx

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/store"
)

// fakeRingTable is the shared table as one node's mirror writes it.
type fakeRingTable struct {
	clusterStore // only SyncRinging is called
	mu           sync.Mutex
	rows         map[store.RingingKey]time.Time
	fail         bool // the next write fails, after it has been applied
}

func (f *fakeRingTable) SyncRinging(_ context.Context, _ string, add []store.RingingCall, remove []store.RingingKey, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range remove {
		delete(f.rows, k)
	}
	for _, r := range add {
		f.rows[store.RingingKey{CallID: r.CallID, Extension: r.Extension}] = r.StartedAt
	}
	if f.fail {
		f.fail = false
		return errors.New("connection lost after the commit")
	}
	return nil
}

func (f *fakeRingTable) keys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ks []string
	for k := range f.rows {
		ks = append(ks, k.CallID+"@"+k.Extension)
	}
	slices.Sort(ks)
	return ks
}

// TestRingMirror: what the mirror writes follows the rings a pickup could answer: an extension
// rings until its last phone stops; a transfer's or a ring-back's ring (not pickable) is not
// written; an answer, a retrieval or the end of the call removes the call; a write whose outcome
// is unknown is made again; alone, the node clears its rows.
func TestRingMirror(t *testing.T) {
	table := &fakeRingTable{rows: map[store.RingingKey]time.Time{}}
	var live sync.Mutex
	others := true
	m := newRingMirror(table, "node-a", time.Minute, func() bool { live.Lock(); defer live.Unlock(); return others },
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	now := time.Now()
	ev := func(kind b2bua.EventKind, call, leg string, pickable bool) {
		m.callEvent(b2bua.Event{Kind: kind, CallID: call, Leg: leg, Pickable: pickable, Time: now})
		m.write()
	}
	want := func(step string, keys ...string) {
		t.Helper()
		if got := table.keys(); !slices.Equal(got, keys) {
			t.Fatalf("%s: rows %v, want %v", step, got, keys)
		}
	}
	m.write() // switches on: the others are live
	ev(b2bua.CallLegRinging, "c1", "101", true)
	ev(b2bua.CallLegRinging, "c1", "101", true) // 101's second phone
	ev(b2bua.CallLegRinging, "c1", "102", true)
	want("three legs", "c1@101", "c1@102")
	ev(b2bua.CallLegEnded, "c1", "101", false)
	want("one phone of 101 declined", "c1@101", "c1@102")
	ev(b2bua.CallLegEnded, "c1", "101", false)
	want("both phones of 101 stopped", "c1@102")
	ev(b2bua.CallLegRinging, "c2", "103", false)
	want("a ring-back is not pickable", "c1@102")
	ev(b2bua.CallAnswered, "c1", "", false)
	want("c1 answered")

	ev(b2bua.CallLegRinging, "c3", "104", true)
	table.mu.Lock()
	table.fail = true
	table.mu.Unlock()
	ev(b2bua.CallLegRinging, "c3", "105", true) // written, but the write reports an error
	table.mu.Lock()
	delete(table.rows, store.RingingKey{CallID: "c3", Extension: "105"}) // as if it had not been
	table.mu.Unlock()
	m.write() // the heartbeat's retry
	want("retried", "c3@104", "c3@105")
	ev(b2bua.CallRetrieved, "c3", "", false)
	want("c3 retrieved")

	ev(b2bua.CallLegRinging, "c4", "106", true)
	want("c4 rings", "c4@106")
	live.Lock()
	others = false
	live.Unlock()
	m.write()
	want("alone")
	ev(b2bua.CallLegRinging, "c4", "107", true)
	want("alone, nothing is written")
	live.Lock()
	others = true
	live.Unlock()
	m.write()
	want("the others are back", "c4@106", "c4@107")
	ev(b2bua.CallEnded, "c4", "", false)
	want("c4 ended")
	m.callsMu.Lock()
	defer m.callsMu.Unlock()
	if len(m.calls) != 0 || len(m.wrote) != 0 || len(m.unsure) != 0 {
		t.Fatalf("left behind: calls %v, wrote %v, unsure %v", m.calls, m.wrote, m.unsure)
	}
}
