package pbx_test

import (
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/store"
)

func groupOf(number, strategy string, timeout int, members ...string) *store.RingGroup {
	g := &store.RingGroup{Number: number, Strategy: strategy, MemberTimeout: timeout}
	for _, m := range members {
		g.Members = append(g.Members, store.RingGroupMember{Extension: m})
	}
	return g
}

// TestRingGroupHunt: default routing hunts through the stored group's members in its order, each
// for the member timeout; one that is busy is passed over at once. Then the same from Lua
// (call:connect with strategy "hunt").
func TestRingGroupHunt(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		o := newCallCentre(t, dsn, store.Queue{Name: "sales"}, "101", "102", "103")
		if err := o.tp.store.CreateGroup(t.Context(), groupOf("500", store.GroupHunt, 1, "103", "102", "101")); err != nil {
			t.Fatal(err)
		}
		inv := o.call("500")
		b := o.ring("103")
		o.phones["103"].RespondWith(b, 180, "Ringing", "")
		rang := time.Now()
		o.phones["103"].AcceptCancel(b) // its member timeout is over
		if d := time.Since(rang); d < 900*time.Millisecond || d > 2*time.Second {
			t.Fatalf("103 rang for %v, member timeout 1 s", d)
		}
		o.phones["102"].Respond(o.ring("102"), 486, "Busy Here", "")
		rs := o.answer(t, "101", o.ring("101"), inv)
		if count(rs, 180) == 0 {
			t.Fatalf("caller saw %v, want ringing", codes(rs))
		}
		if cdr := lastCDR(t, o.tp, inv.CallID().Value()); cdr.Dialled != "500" || cdr.Callee != "101" {
			t.Fatalf("CDR dialled %s callee %s", cdr.Dialled, cdr.Callee)
		}

		// Lua: {"103", "101"} hunted, 1 s each; nobody answers: 480.
		inv = o.call("hunt")
		for _, ext := range []string{"103", "101"} {
			b = o.ring(ext)
			o.phones[ext].RespondWith(b, 180, "Ringing", "")
			o.phones[ext].AcceptCancel(b)
		}
		if r := final(awaitFinal(t, o.caller, inv, 5*time.Second)); r.StatusCode != 480 {
			t.Fatalf("hunt without answer: %d, want 480", r.StatusCode)
		}
		waitIdle(t, o.tp)
	})
}

// TestRingGroupParallel: a parallel group rings every member at once; the first to answer takes
// the call and the others are CANCELled. Every member busy: 486.
func TestRingGroupParallel(t *testing.T) {
	o := newCallCentre(t, "sqlite::memory:", store.Queue{Name: "sales"}, "101", "102", "103")
	if err := o.tp.store.CreateGroup(t.Context(), groupOf("501", store.GroupParallel, 5, "101", "102", "103")); err != nil {
		t.Fatal(err)
	}
	inv := o.call("501")
	rung := map[string]*sip.Request{}
	for len(rung) < 3 {
		ext, b := o.nextRing(t, 2*time.Second)
		rung[ext] = b
	}
	o.phones["101"].RespondWith(rung["101"], 180, "Ringing", "")
	o.phones["103"].RespondWith(rung["103"], 180, "Ringing", "")
	o.answer(t, "102", rung["102"], inv)
	o.phones["101"].AcceptCancel(rung["101"])
	o.phones["103"].AcceptCancel(rung["103"])

	inv = o.call("501")
	for range 3 {
		ext, b := o.nextRing(t, 2*time.Second)
		o.phones[ext].Respond(b, 486, "Busy Here", "")
	}
	if r := final(awaitFinal(t, o.caller, inv, 5*time.Second)); r.StatusCode != 486 {
		t.Fatalf("every member busy: %d, want 486", r.StatusCode)
	}
	waitIdle(t, o.tp)
}
