package store_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/internal/testenv"
	"github.com/pbxkit/pbxkit/store"
)

// TestNodeHeartbeat: a node's heartbeat adds its row and refreshes last_seen; RemoveNode takes it
// away; two nodes see each other.
func TestNodeHeartbeat(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		clock := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
		now := func() time.Time { return clock }
		a := open(t, dsn, store.WithNodeID("a"), store.WithClock(now))
		b := open(t, dsn, store.WithNodeID("b"), store.WithClock(now))
		start := clock
		if err := a.Heartbeat(ctx, store.Node{ID: "a", SIPAddr: "127.0.0.1:5070", Version: "v1", StartedAt: start}); err != nil {
			t.Fatal(err)
		}
		clock = clock.Add(3 * time.Second)
		if err := a.Heartbeat(ctx, store.Node{ID: "a", SIPAddr: "127.0.0.1:5070", Version: "v1", StartedAt: start}); err != nil {
			t.Fatal(err)
		}
		if err := b.Heartbeat(ctx, store.Node{ID: "b", SIPAddr: "127.0.0.1:5080", HTTPAddr: "127.0.0.1:8080", StartedAt: clock}); err != nil {
			t.Fatal(err)
		}
		nodes, err := b.Nodes(ctx)
		if err != nil || len(nodes) != 2 {
			t.Fatalf("nodes: %+v, %v", nodes, err)
		}
		if n := nodes[0]; n.ID != "a" || n.SIPAddr != "127.0.0.1:5070" || !n.StartedAt.Equal(start) || !n.LastSeen.Equal(clock) {
			t.Errorf("node a: %+v, want started %v, last seen %v", n, start, clock)
		}
		if n := nodes[1]; n.ID != "b" || n.HTTPAddr != "127.0.0.1:8080" {
			t.Errorf("node b: %+v", n)
		}
		if err := a.RemoveNode(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Node(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("node a after removal: %v", err)
		}
		if err := a.Heartbeat(ctx, store.Node{ID: "bad id!"}); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("bad node id: %v", err)
		}
	})
}

// TestNonceKeyShared: every node asking for a generation gets the same key, also when they ask at
// once; another generation has another key.
func TestNonceKeyShared(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		stores := []*store.Store{open(t, dsn, store.WithNodeID("a")), open(t, dsn, store.WithNodeID("b"))}
		keys := make([][]byte, 6)
		var wg sync.WaitGroup
		for i := range keys {
			wg.Go(func() {
				k, err := stores[i%2].NonceKey(ctx, 1000)
				if err != nil {
					t.Error(err)
				}
				keys[i] = k
			})
		}
		wg.Wait()
		for i, k := range keys {
			if len(k) != store.NonceKeyLen || !bytes.Equal(k, keys[0]) {
				t.Fatalf("key %d: %x, want %x", i, k, keys[0])
			}
		}
		next, err := stores[1].NonceKey(ctx, 1001)
		if err != nil || bytes.Equal(next, keys[0]) {
			t.Fatalf("next generation: %x, %v", next, err)
		}
		// Old generations go: 1000 is kept while 1002 is the newest, not after 1003.
		if _, err := stores[0].NonceKey(ctx, 1003); err != nil {
			t.Fatal(err)
		}
		again, err := stores[0].NonceKey(ctx, 1000)
		if err != nil || bytes.Equal(again, keys[0]) {
			t.Errorf("generation 1000 after 1003: same key %v (%v); want it deleted and made anew", bytes.Equal(again, keys[0]), err)
		}
	})
}

// TestBansShared: a ban written by one node is listed by another until it ends.
func TestBansShared(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		clock := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
		now := func() time.Time { return clock }
		a := open(t, dsn, store.WithNodeID("a"), store.WithClock(now))
		b := open(t, dsn, store.WithNodeID("b"), store.WithClock(now))
		if err := a.PutBan(ctx, "192.0.2.7", clock.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		bans, err := b.Bans(ctx)
		if err != nil || len(bans) != 1 || bans[0].IP != "192.0.2.7" || bans[0].NodeID != "a" {
			t.Fatalf("bans: %+v, %v", bans, err)
		}
		clock = clock.Add(2 * time.Minute)
		if bans, err := b.Bans(ctx); err != nil || len(bans) != 0 {
			t.Fatalf("bans after the end: %+v, %v", bans, err)
		}
		// Lifting: a ban in force goes for every node; none in force, or not an address, is an error.
		if err := a.PutBan(ctx, "2001:db8::7", clock.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := b.LiftBan(ctx, "2001:db8::7"); err != nil {
			t.Fatal(err)
		}
		if bans, err := a.Bans(ctx); err != nil || len(bans) != 0 {
			t.Fatalf("bans after lifting: %+v, %v", bans, err)
		}
		if err := b.LiftBan(ctx, "2001:db8::7"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("lifting again: %v", err)
		}
		if err := b.LiftBan(ctx, "192.0.2.7"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("lifting an ended ban: %v", err)
		}
		if err := b.LiftBan(ctx, "not-an-ip"); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("lifting a malformed address: %v", err)
		}
	})
}

// TestAgentClaims: an agent claimed by one node cannot be claimed by another (nor for another call
// of the same node) until the claim is released or, its node having stopped renewing it, expires.
func TestAgentClaims(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		clock := newTestClock()
		a, b := twoNodes(t, dsn, clock)
		claim := func(s *store.Store, call string, want bool) {
			t.Helper()
			got, err := s.ClaimAgent(ctx, s.NodeID(), "201", call, 10*time.Second)
			if err != nil || got != want {
				t.Fatalf("%s claims 201 for %s: %v, %v; want %v", s.NodeID(), call, got, err, want)
			}
		}
		claim(a, "c1", true)
		claim(b, "c2", false)
		claim(a, "c3", false)
		if err := a.ReleaseAgent(ctx, "a", "201", "c3"); err != nil { // not the holder: no effect
			t.Fatal(err)
		}
		claim(b, "c2", false)
		if err := a.ReleaseAgent(ctx, "a", "201", "c1"); err != nil {
			t.Fatal(err)
		}
		claim(b, "c2", true)
		// b keeps renewing for a while, then dies: its claim runs out.
		clock.advance(8 * time.Second)
		if err := b.RenewClaims(ctx, "b", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		clock.advance(8 * time.Second)
		claim(a, "c4", false)
		clock.advance(3 * time.Second)
		claim(a, "c4", true)
		if err := a.ReleaseClaims(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		claim(b, "c5", true)
	})
}

// TestNotifyBindings: on Postgres a registration written through one node reaches the other's
// cache at once, although its entries would live an hour: the listening connection drops them.
func TestNotifyBindings(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	ctx := context.Background()
	a := open(t, dsn, store.WithNodeID("a"), store.WithCacheTTL(time.Hour))
	b := open(t, dsn, store.WithNodeID("b"), store.WithCacheTTL(time.Hour))
	mustCreate(t, a, "100")
	eventually(t, "listening", func() bool { return a.Listening() && b.Listening() })
	if bs, err := b.Bindings(ctx, "100"); err != nil || len(bs) != 0 {
		t.Fatalf("before: %v, %v", bs, err) // cached as none
	}
	err := a.PutBinding(ctx, store.Binding{Extension: "100", Contact: "sip:100@192.0.2.1:5060", Source: "192.0.2.1:5060",
		Transport: "udp", ExpiresAt: time.Now().Add(time.Hour), CallID: "c", CSeq: 1})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new binding", func() bool {
		bs, err := b.Bindings(ctx, "100")
		return err == nil && len(bs) == 1 && bs[0].NodeID == "a"
	})
	if err := a.DeleteBinding(ctx, "100", "sip:100@192.0.2.1:5060"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the removal", func() bool { bs, err := b.Bindings(ctx, "100"); return err == nil && len(bs) == 0 })
	select {
	case <-b.BansChanged(): // the signal every (re)connection gives
	default:
	}
	if err := a.PutBan(ctx, "192.0.2.9", time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.BansChanged():
	case <-time.After(10 * time.Second):
		t.Fatal("no ban notification")
	}
	// Reading the bans deletes none in force: no notification (else every node's reading would
	// wake every node). Lifting one is announced.
	if _, err := a.Bans(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.BansChanged():
		t.Fatal("reading the bans announced a change")
	case <-time.After(300 * time.Millisecond):
	}
	if err := a.LiftBan(ctx, "192.0.2.9"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.BansChanged():
	case <-time.After(10 * time.Second):
		t.Fatal("no notification of the lifted ban")
	}
}

// TestQueueWaitersShared: callers joining a queue through two nodes get one order; one that
// leaves moves those behind up; a dead node's callers expire; a full queue refuses.
func TestQueueWaitersShared(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		clock := newTestClock()
		a, b := twoNodes(t, dsn, clock)
		join := func(s *store.Store, call string, wantPos int, wantOK bool) {
			t.Helper()
			pos, ok, err := s.JoinQueue(ctx, s.NodeID(), "sales", call, 3, 10*time.Second)
			if err != nil || pos != wantPos || ok != wantOK {
				t.Fatalf("%s joins with %s: position %d, %v, %v; want %d, %v", s.NodeID(), call, pos, ok, err, wantPos, wantOK)
			}
			clock.advance(time.Millisecond)
		}
		position := func(s *store.Store, call string, want int) {
			t.Helper()
			if pos, err := s.QueuePosition(ctx, "sales", call); err != nil || pos != want {
				t.Fatalf("position of %s: %d, %v; want %d", call, pos, err, want)
			}
		}
		join(a, "c1", 1, true)
		join(b, "c2", 2, true)
		join(a, "c3", 3, true)
		join(b, "c4", 0, false) // full
		if err := a.LeaveQueue(ctx, "sales", "c1"); err != nil {
			t.Fatal(err)
		}
		position(a, "c3", 2)
		position(b, "c2", 1)
		// b dies: its caller c2 expires after the TTL while a keeps renewing.
		clock.advance(8 * time.Second)
		if err := a.RenewClaims(ctx, "a", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		clock.advance(3 * time.Second)
		position(a, "c3", 1)
		position(a, "gone", 0)
		if err := a.ReleaseClaims(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		position(a, "c3", 0)
	})
}

// TestQueueWaiting: the callers waiting in a queue on every node are counted, with the time the
// first of them joined; a dead node's callers are not.
func TestQueueWaiting(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		clock := newTestClock()
		a, b := twoNodes(t, dsn, clock)
		if n, oldest, err := a.QueueWaiting(ctx, "sales"); err != nil || n != 0 || !oldest.IsZero() {
			t.Fatalf("empty queue: %d %v %v", n, oldest, err)
		}
		start := clock.now()
		if _, _, err := a.JoinQueue(ctx, "a", "sales", "c1", 0, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		clock.advance(2 * time.Second)
		if _, _, err := b.JoinQueue(ctx, "b", "sales", "c2", 0, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		if n, oldest, err := b.QueueWaiting(ctx, "sales"); err != nil || n != 2 || !oldest.Equal(start) {
			t.Fatalf("two waiting: %d %v %v, want 2 since %v", n, oldest, err, start)
		}
		clock.advance(9 * time.Second) // a died: its caller's row ran out
		if n, oldest, err := b.QueueWaiting(ctx, "sales"); err != nil || n != 1 || !oldest.Equal(start.Add(2*time.Second)) {
			t.Fatalf("after a died: %d %v %v", n, oldest, err)
		}
	})
}
