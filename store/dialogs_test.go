package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/internal/testenv"
	"github.com/pbxkit/pbxkit/store"
)

// TestWatchedExtensions: nodes write the extensions their phones watch in batches; WatchedBy
// lists those of the nodes asked, each once; rows expire with their node and go with
// ReleaseClaims.
func TestWatchedExtensions(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		clock := newTestClock()
		a, b := twoNodes(t, dsn, clock)
		sync := func(s *store.Store, add, remove []string) {
			t.Helper()
			if err := s.SyncWatched(ctx, s.NodeID(), add, remove, 10*time.Second); err != nil {
				t.Fatalf("%s syncs +%v -%v: %v", s.NodeID(), add, remove, err)
			}
		}
		watched := func(nodes []string, want string) {
			t.Helper()
			got, err := a.WatchedBy(ctx, nodes)
			if err != nil || strings.Join(got, " ") != want {
				t.Fatalf("watched by %v: %v, %v; want %q", nodes, got, err, want)
			}
		}
		watched([]string{"a", "b"}, "")
		sync(a, []string{"102", "101", "101"}, nil) // twice in one batch: once
		sync(b, []string{"102", "103"}, nil)
		watched([]string{"a"}, "101 102")
		watched([]string{"b"}, "102 103")
		watched([]string{"a", "b"}, "101 102 103")
		watched([]string{"c"}, "")
		watched(nil, "")
		// a stops watching 101 and starts 104; writing 102 again changes nothing; removing what is
		// not there is no error.
		sync(a, []string{"104", "102"}, []string{"101", "109"})
		watched([]string{"a"}, "102 104")
		sync(a, nil, nil)
		// a keeps renewing while b dies.
		clock.advance(8 * time.Second)
		if err := a.RenewClaims(ctx, "a", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		clock.advance(3 * time.Second)
		watched([]string{"a", "b"}, "102 104")
		watched([]string{"b"}, "")
		if err := a.ReleaseClaims(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		watched([]string{"a", "b"}, "")
		if n, err := store.Count(ctx, a, "SELECT count(*) FROM watched_extensions WHERE node_id = 'a'"); err != nil || n != 0 {
			t.Fatalf("a's rows after ReleaseClaims: %d, %v", n, err)
		}
	})
}

// TestDialogStates: nodes write the dialogs of extensions in batches (a dialog written again is
// updated); DialogsOf lists the live dialogs of the extensions asked on the nodes asked; rows expire with
// their node and go with ReleaseClaims.
func TestDialogStates(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		clock := newTestClock()
		a, b := twoNodes(t, dsn, clock)
		t0 := clock.now()
		dialog := func(ext, id, dir, state, peer string) store.DialogState {
			return store.DialogState{NodeID: "ignored", Extension: ext, DialogID: id, Direction: dir, State: state,
				Peer: peer, ExpiresAt: t0.Add(time.Hour)}
		}
		sync := func(s *store.Store, put []store.DialogState, remove []store.DialogKey) {
			t.Helper()
			if err := s.SyncDialogs(ctx, s.NodeID(), put, remove, 10*time.Second); err != nil {
				t.Fatalf("%s syncs: %v", s.NodeID(), err)
			}
		}
		dialogs := func(ext string, nodes []string, want string) {
			t.Helper()
			ds, err := b.DialogsOf(ctx, []string{ext}, nodes)
			if err != nil {
				t.Fatalf("dialogs of %s on %v: %v", ext, nodes, err)
			}
			var got []string
			for _, d := range ds {
				if d.Extension != ext {
					t.Fatalf("dialogs of %s: %+v", ext, d)
				}
				got = append(got, fmt.Sprintf("%s/%s/%s/%s/%s", d.NodeID, d.DialogID, d.Direction, d.State, d.Peer))
			}
			if strings.Join(got, " ") != want {
				t.Fatalf("dialogs of %s on %v:\n got %q\nwant %q", ext, nodes, strings.Join(got, " "), want)
			}
		}
		dialogs("101", []string{"a", "b"}, "")
		sync(a, []store.DialogState{
			dialog("101", "d2", "recipient", "early", "200"),
			dialog("101", "d1", "initiator", "trying", "0612345678"),
			dialog("102", "d3", "initiator", "confirmed", "101"),
		}, nil)
		sync(b, []store.DialogState{dialog("101", "d0", "recipient", "confirmed", "300")}, nil)
		dialogs("101", []string{"a"}, "a/d1/initiator/trying/0612345678 a/d2/recipient/early/200")
		dialogs("101", []string{"b", "a"}, "a/d1/initiator/trying/0612345678 a/d2/recipient/early/200 b/d0/recipient/confirmed/300")
		dialogs("102", []string{"a", "b"}, "a/d3/initiator/confirmed/101")
		dialogs("101", []string{"c"}, "")
		dialogs("101", nil, "")
		ds, err := b.DialogsOf(ctx, []string{"102"}, []string{"a"})
		if err != nil || len(ds) != 1 || !ds[0].ExpiresAt.Equal(t0.Add(10*time.Second)) {
			t.Fatalf("expiry of a's dialog: %+v, %v; want %v", ds, err, t0.Add(10*time.Second))
		}
		// One batch: d1 answered (written twice: the last counts), d2 ended, d3's peer changed, a
		// dialog not there removed.
		sync(a, []store.DialogState{
			dialog("101", "d1", "initiator", "proceeding", "0612345678"),
			dialog("102", "d3", "initiator", "confirmed", "103"),
			dialog("101", "d1", "initiator", "confirmed", "0612345678"),
		}, []store.DialogKey{{Extension: "101", DialogID: "d2"}, {Extension: "109", DialogID: "d9"}})
		dialogs("101", []string{"a", "b"}, "a/d1/initiator/confirmed/0612345678 b/d0/recipient/confirmed/300")
		dialogs("102", []string{"a", "b"}, "a/d3/initiator/confirmed/103")
		// A key names a dialog of the node's own rows: b's d0 stays when a removes it.
		sync(a, nil, []store.DialogKey{{Extension: "101", DialogID: "d0"}})
		dialogs("101", []string{"b"}, "b/d0/recipient/confirmed/300")
		sync(a, nil, nil)
		// a keeps renewing while b dies.
		clock.advance(8 * time.Second)
		if err := a.RenewClaims(ctx, "a", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		clock.advance(3 * time.Second)
		dialogs("101", []string{"a", "b"}, "a/d1/initiator/confirmed/0612345678")
		if err := a.ReleaseClaims(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		dialogs("101", []string{"a", "b"}, "")
		dialogs("102", []string{"a", "b"}, "")
	})
}

// TestDialogsBatches: batches beyond one INSERT's rows, written and read back in order.
func TestDialogsBatches(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		a := open(t, dsn, store.WithNodeID("a"))
		var put []store.DialogState
		var exts []string
		for i := range 250 {
			put = append(put, store.DialogState{Extension: "101", DialogID: fmt.Sprintf("d%03d", i), Direction: "recipient", State: "early"})
			exts = append(exts, fmt.Sprint(1000+i))
		}
		if err := a.SyncDialogs(ctx, "a", put, nil, time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := a.SyncWatched(ctx, "a", exts, nil, time.Minute); err != nil {
			t.Fatal(err)
		}
		ds, err := a.DialogsOf(ctx, []string{"101"}, []string{"a"})
		if err != nil || len(ds) != 250 || ds[0].DialogID != "d000" || ds[249].DialogID != "d249" {
			t.Fatalf("dialogs: %d, %v", len(ds), err)
		}
		got, err := a.WatchedBy(ctx, []string{"a"})
		if err != nil || len(got) != 250 || got[0] != "1000" || got[249] != "1249" {
			t.Fatalf("watched: %d, %v", len(got), err)
		}
	})
}

// notes collects the extensions a WatchDialogs callback is told.
type notes chan string

func (n notes) f(ext string) {
	select {
	case n <- ext:
	default:
	}
}

// want waits for ext, skipping others (a store's own writes, an earlier change).
func (n notes) want(t *testing.T, ext string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case got := <-n:
			if got == ext {
				return
			}
		case <-deadline:
			t.Fatalf("no dialogs notification for %q", ext)
		}
	}
}

// none checks that nothing is told for a while.
func (n notes) none(t *testing.T, what string) {
	t.Helper()
	select {
	case got := <-n:
		t.Fatalf("%s: told %q", what, got)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestNotifyDialogs: on Postgres a change of dialog states written through one node is told to
// the WatchDialogs callbacks of every node with its extension, but not to a stopped one, nor for
// a renewal; a change of watched extensions signals WatchedChanged.
func TestNotifyDialogs(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	ctx := context.Background()
	a := open(t, dsn, store.WithNodeID("a"), store.WithCacheTTL(time.Hour))
	b := open(t, dsn, store.WithNodeID("b"), store.WithCacheTTL(time.Hour))
	eventually(t, "listening", func() bool { return a.Listening() && b.Listening() })
	got, gone, second := make(notes, 16), make(notes, 16), make(notes, 16)
	defer b.WatchDialogs(got.f)()
	defer b.WatchDialogs(second.f)()
	b.WatchDialogs(gone.f)()
	put := func(state string) {
		t.Helper()
		err := a.SyncDialogs(ctx, "a", []store.DialogState{{Extension: "101", DialogID: "d1", Direction: "recipient", State: state}},
			nil, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
	}
	put("early")
	got.want(t, "101")
	second.want(t, "101")
	put("early") // written again unchanged: a renewal
	if err := a.RenewClaims(ctx, "a", time.Minute); err != nil {
		t.Fatal(err)
	}
	got.none(t, "a renewal")
	put("confirmed")
	got.want(t, "101")
	if err := a.SyncDialogs(ctx, "a", nil, []store.DialogKey{{Extension: "101", DialogID: "d1"}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	got.want(t, "101")
	gone.none(t, "a stopped callback")

	select {
	case <-b.WatchedChanged(): // a signal left from the connection's start, if any
	default:
	}
	sync := func(add, remove []string) {
		t.Helper()
		if err := a.SyncWatched(ctx, "a", add, remove, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	changed := func(want bool, what string) {
		t.Helper()
		wait := 10 * time.Second
		if !want {
			wait = 300 * time.Millisecond
		}
		select {
		case <-b.WatchedChanged():
			if !want {
				t.Fatalf("%s signalled WatchedChanged", what)
			}
		case <-time.After(wait):
			if want {
				t.Fatalf("%s did not signal WatchedChanged", what)
			}
		}
	}
	sync([]string{"101", "102"}, nil)
	changed(true, "watching")
	sync([]string{"101"}, nil)
	if err := a.RenewClaims(ctx, "a", time.Minute); err != nil {
		t.Fatal(err)
	}
	changed(false, "a renewal")
	sync(nil, []string{"102"})
	changed(true, "a removal")
	if err := a.ReleaseClaims(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	changed(true, "ReleaseClaims")
}

// TestNotifyDialogsReconnect: after the listening connection was cut and opened again, the
// WatchDialogs callbacks are told "" and WatchedChanged is signalled: notifications were lost.
func TestNotifyDialogsReconnect(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	ctx := context.Background()
	s := open(t, dsn, store.WithCacheTTL(time.Hour))
	eventually(t, "listening", s.Listening)
	got := make(notes, 16)
	defer s.WatchDialogs(got.f)()
	select {
	case <-s.WatchedChanged():
	default:
	}
	err := store.Exec(ctx, s, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE query = 'LISTEN "pbxkit_' || current_schema() || '"' AND pid <> pg_backend_pid()`)
	if err != nil {
		t.Fatal(err)
	}
	got.want(t, "")
	select {
	case <-s.WatchedChanged():
	case <-time.After(10 * time.Second):
		t.Fatal("WatchedChanged not signalled after the reconnection")
	}
	// Notifications flow again.
	if err := s.SyncDialogs(ctx, "n", []store.DialogState{{Extension: "105", DialogID: "d", Direction: "initiator", State: "trying"}},
		nil, time.Minute); err != nil {
		t.Fatal(err)
	}
	got.want(t, "105")
}
