package pbx_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/store"
)

// TestQueueStrategies: over repeated calls each strategy offers the agents in its order. A step
// "102-" is agent 102 ringing and answering busy (the queue goes on to the next agent at once),
// "101+" agent 101 ringing and answering; "*" every agent ringing at once (102 answers); "?+"
// any one agent ringing alone and answering.
func TestQueueStrategies(t *testing.T) {
	for _, tc := range []struct {
		strategy string
		calls    [][]string
	}{
		// linear starts from the first agent for every caller.
		{store.StrategyLinear, [][]string{{"101+"}, {"101-", "102-", "103+"}, {"101+"}}},
		// roundrobin goes on from the agent the queue offered last, across callers.
		{store.StrategyRoundRobin, [][]string{{"101+"}, {"102-", "103-", "101+"}, {"102+"}, {"103-", "101+"}}},
		// leastrecent: agents who never had a call first, then the one whose call ended longest ago.
		{store.StrategyLeastRecent, [][]string{{"101+"}, {"102-", "103-", "101+"}, {"102+"}, {"103-", "101+"}}},
		// fewestcalls: 101 took two calls, 102 one: 102 before 101.
		{store.StrategyFewestCalls, [][]string{{"101+"}, {"102-", "103-", "101+"}, {"102+"}, {"103-", "102+"}}},
		{store.StrategyRandom, [][]string{{"?+"}, {"?+"}, {"?+"}, {"?+"}}},
		{store.StrategyRingAll, [][]string{{"*"}, {"*"}}},
	} {
		t.Run(tc.strategy, func(t *testing.T) {
			o := newCallCentre(t, "sqlite::memory:", store.Queue{Name: "sales", Strategy: tc.strategy}, "101", "102", "103")
			for i, steps := range tc.calls {
				inv := o.call("sales")
				for _, step := range steps {
					o.queueStep(t, inv, step, fmt.Sprintf("call %d, step %s", i+1, step))
				}
			}
			want := fmt.Sprintf("w=0 ans=%d ab=0 to=0 full=0", len(tc.calls))
			if got := o.statsBecome(t, want); got != want {
				t.Fatalf("stats %q, want %q", got, want)
			}
		})
	}
}

// queueStep plays one step of TestQueueStrategies for the caller's INVITE inv.
func (o *office) queueStep(t *testing.T, inv *sip.Request, step, what string) {
	t.Helper()
	ext, bInv := o.nextRing(t, 5*time.Second)
	switch {
	case step == "*":
		rung := map[string]*sip.Request{ext: bInv}
		for len(rung) < 3 {
			e, b := o.nextRing(t, 2*time.Second)
			rung[e] = b
		}
		for _, e := range []string{"101", "103"} {
			o.phones[e].RespondWith(rung[e], 180, "Ringing", "")
		}
		o.answer(t, "102", rung["102"], inv)
		for _, e := range []string{"101", "103"} {
			o.phones[e].AcceptCancel(rung[e])
		}
		return
	case strings.HasPrefix(step, "?"):
	case ext != step[:3]:
		t.Fatalf("%s: %s rang", what, ext)
	}
	if strings.HasSuffix(step, "-") {
		o.phones[ext].Respond(bInv, 486, "Busy Here", "")
		return
	}
	o.answer(t, ext, bInv, inv)
	o.quiet(t, map[string]bool{bInv.CallID().Value(): true}, "101", "102", "103")
}

// TestQueuePausedAndWrapUpSkipped: a paused agent, one logged out and one in wrap-up after a
// call are not offered calls; unpaused (by the feature code, from the agent's phone) and after
// the wrap-up they are again.
func TestQueuePausedAndWrapUpSkipped(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		o := newCallCentre(t, dsn, store.Queue{Name: "sales", Strategy: store.StrategyLinear, WrapUp: 2}, "101", "102", "103")
		ctx := context.Background()
		if _, err := o.tp.store.UpdateQueueMembers(ctx, "sales", "101", store.QueueMemberPatch{Paused: ptr(true), PauseReason: ptr("lunch")}); err != nil {
			t.Fatal(err)
		}
		// 101 paused: 102 takes the call, and is in wrap-up for 2 s after it.
		inv := o.call("sales")
		ext, b := o.nextRing(t, 5*time.Second)
		if ext != "102" {
			t.Fatalf("%s rang, want 102 (101 is paused)", ext)
		}
		o.answer(t, "102", b, inv)
		ended := time.Now()
		inv = o.call("sales")
		if ext, b = o.nextRing(t, 5*time.Second); ext != "103" {
			t.Fatalf("%s rang, want 103 (101 paused, 102 in wrap-up)", ext)
		}
		o.answer(t, "103", b, inv)

		// 101 dials the pause code: paused in all its queues already, so it is unpaused.
		rs := dialFrom(t, o.phones["101"], "101", "*45")
		if r := final(rs); r.StatusCode != 603 || r.Reason != "Agent Unpaused" || !strings.Contains(header(r, "Warning"), "101 unpaused in sales") {
			t.Fatalf("pause code: %d %q %q", r.StatusCode, r.Reason, header(r, "Warning"))
		}
		// 101 is back, and first in the linear order.
		inv = o.call("sales")
		if ext, b = o.nextRing(t, 5*time.Second); ext != "101" {
			t.Fatalf("%s rang, want 101 (unpaused)", ext)
		}
		o.answer(t, "101", b, inv)
		// 101 logs out (Lua pbx.queue_login is the same as the CLI's logout) and is in wrap-up;
		// 102's wrap-up is over by now.
		if _, err := o.tp.store.UpdateQueueMembers(ctx, "sales", "101", store.QueueMemberPatch{LoggedOut: ptr(true)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Until(ended.Add(2100 * time.Millisecond)))
		inv = o.call("sales")
		if ext, b = o.nextRing(t, 5*time.Second); ext != "102" {
			t.Fatalf("%s rang, want 102 (wrap-up over, 101 logged out)", ext)
		}
		o.answer(t, "102", b, inv)
		// The pause code now pauses 101 (it is not paused anywhere).
		if r := final(dialFrom(t, o.phones["101"], "101", "*45")); r.StatusCode != 603 || r.Reason != "Agent Paused" {
			t.Fatalf("pause code: %d %q", r.StatusCode, r.Reason)
		}
		if r := final(dialFrom(t, o.phones["101"], "999", "*45")); r.StatusCode != 404 || r.Reason != "Not A Queue Agent" {
			t.Fatalf("pause code from no agent: %d %q", r.StatusCode, r.Reason)
		}
		waitIdle(t, o.tp)
	})
}
