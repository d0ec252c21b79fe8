package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/store"
)

// TestParkSlotClaims: a slot claimed by one node cannot be claimed by another until released or,
// its node having stopped renewing it, expired; the same node takes its own slot over (its park
// lot decides). ParkedAt names the node that holds a live slot.
func TestParkSlotClaims(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		clock := newTestClock()
		a, b := twoNodes(t, dsn, clock)
		claim := func(s *store.Store, call string, want bool) {
			t.Helper()
			got, err := s.ClaimSlot(ctx, s.NodeID(), "701", call, 10*time.Second)
			if err != nil || got != want {
				t.Fatalf("%s claims 701 for %s: %v, %v; want %v", s.NodeID(), call, got, err, want)
			}
		}
		parked := func(s *store.Store, node, call string) {
			t.Helper()
			p, ok, err := s.ParkedAt(ctx, "701")
			if err != nil || ok != (node != "") || p.NodeID != node || p.CallID != call {
				t.Fatalf("parked at 701: %+v %v %v; want %q %q", p, ok, err, node, call)
			}
		}
		parked(b, "", "")
		claim(a, "c1", true)
		parked(b, "a", "c1")
		claim(b, "c2", false)
		claim(a, "c3", true) // a's own lot gave the slot to another of its calls
		parked(b, "a", "c3")
		if err := a.ReleaseSlot(ctx, "a", "701", "c1"); err != nil { // not the holder: no effect
			t.Fatal(err)
		}
		parked(b, "a", "c3")
		if err := a.ReleaseSlot(ctx, "a", "701", "c3"); err != nil {
			t.Fatal(err)
		}
		parked(a, "", "")
		claim(b, "c2", true)
		clock.advance(8 * time.Second)
		if err := b.RenewClaims(ctx, "b", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		clock.advance(8 * time.Second)
		claim(a, "c4", false)
		clock.advance(3 * time.Second) // b died: its slot ran out
		parked(a, "", "")
		claim(a, "c4", true)
		if err := a.ReleaseClaims(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		parked(b, "", "")
	})
}

// TestKeepSlots: a node keeps only the park slot claims its park lot holds; the others' stay.
func TestKeepSlots(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		a := open(t, dsn, store.WithNodeID("a"))
		for _, c := range []struct{ node, slot string }{{"a", "701"}, {"a", "702"}, {"a", "703"}, {"b", "704"}} {
			if ok, err := a.ClaimSlot(ctx, c.node, c.slot, "call-"+c.slot, time.Minute); err != nil || !ok {
				t.Fatalf("claim %v: %v %v", c, ok, err)
			}
		}
		held := func(want ...string) {
			t.Helper()
			var got []string
			for _, slot := range []string{"701", "702", "703", "704"} {
				if _, ok, err := a.ParkedAt(ctx, slot); err != nil {
					t.Fatal(err)
				} else if ok {
					got = append(got, slot)
				}
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("slots held %v, want %v", got, want)
			}
		}
		if err := a.KeepSlots(ctx, "a", []string{"702"}); err != nil {
			t.Fatal(err)
		}
		held("702", "704")
		if err := a.KeepSlots(ctx, "a", nil); err != nil {
			t.Fatal(err)
		}
		held("704")
	})
}

// TestRingingCalls: nodes write their ringing calls in batches; RingingAt finds the one ringing
// longest at any of the extensions asked, on a live node other than the asker's; rows expire with
// their node and go with ReleaseClaims.
func TestRingingCalls(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		clock := newTestClock()
		a, b := twoNodes(t, dsn, clock)
		t0 := clock.now()
		ring := func(call, ext string, at time.Duration) store.RingingCall {
			return store.RingingCall{CallID: call, Extension: ext, StartedAt: t0.Add(at)}
		}
		others := map[string][]string{"a": {"b"}, "b": {"a"}} // the live nodes each asks
		at := func(s *store.Store, exts []string, want string) {
			t.Helper()
			r, ok, err := s.RingingAt(ctx, exts, others[s.NodeID()])
			if err != nil || ok != (want != "") || (ok && r.CallID+" "+r.Extension+" "+r.NodeID != want) {
				t.Fatalf("%s asks %v: %+v %v %v; want %q", s.NodeID(), exts, r, ok, err, want)
			}
		}
		err := a.SyncRinging(ctx, "a", []store.RingingCall{ring("c1", "101", 2*time.Second), ring("c1", "102", 2*time.Second),
			ring("c2", "102", time.Second)}, nil, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		at(b, []string{"101"}, "c1 101 a")
		at(b, []string{"101", "102"}, "c2 102 a") // c2 has rung longest
		at(a, []string{"101", "102"}, "")         // a's own calls are a's to find
		if r, ok, err := b.RingingAt(ctx, []string{"101"}, []string{"c"}); err != nil || ok {
			t.Fatalf("asking only node c: %+v %v %v", r, ok, err) // a is not among the live nodes
		}
		at(b, []string{"103"}, "")
		// A batch removes c2 and adds c3; writing c1 again changes nothing.
		err = a.SyncRinging(ctx, "a", []store.RingingCall{ring("c3", "103", 3*time.Second), ring("c1", "101", 2*time.Second)},
			[]store.RingingKey{{CallID: "c2", Extension: "102"}, {CallID: "c9", Extension: "109"}}, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		at(b, []string{"101", "102"}, "c1 101 a")
		at(b, []string{"103"}, "c3 103 a")
		if err := b.SyncRinging(ctx, "b", []store.RingingCall{ring("c4", "104", 0)}, nil, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		clock.advance(8 * time.Second)
		if err := a.RenewClaims(ctx, "a", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		clock.advance(3 * time.Second) // b died
		at(a, []string{"104"}, "")
		at(b, []string{"103"}, "c3 103 a")
		if err := a.ReleaseClaims(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		at(b, []string{"101", "102", "103"}, "")
	})
}
