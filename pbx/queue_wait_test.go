package pbx_test

import (
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/store"
)

// TestQueuePositionsMoveUp: three callers wait at positions 1, 2 and 3; the second hangs up and
// the third hears it is 2nd; the agent answers the first and the third hears it is 1st. The
// figures count one answered and two abandoned.
func TestQueuePositionsMoveUp(t *testing.T) {
	o := newCallCentre(t, "sqlite::memory:", store.Queue{Name: "sales"}, "101")
	callers := []*uaClient{o.caller, newClient(t, o.tp.addr), newClient(t, o.tp.addr)}
	invs := make([]*sip.Request, 3)
	for i, c := range callers {
		msg, inv := c.Invite("100", "sales", nil)
		c.Send(msg)
		invs[i] = inv
		waitPhrase(t, c, inv, 182, queuedPhrase(i+1))
	}
	_, b := o.nextRing(t, 5*time.Second) // the first caller's offer
	o.phones["101"].RespondWith(b, 180, "Ringing", "")
	if n := o.tp.Queues().Stats("sales"); n.Waiting != 3 || n.LongestWait <= 0 {
		t.Fatalf("stats while three wait: %+v", n)
	}

	// The second caller hangs up: it leaves at once, the third moves up.
	callers[1].Send(cancelOf(invs[1]))
	ackFinal(callers[1], invs[1], callers[1].WaitResponse(487))
	waitPhrase(t, callers[2], invs[2], 182, queuedPhrase(2))

	// The agent answers the first caller: the third is first in line (and waits: 101 is busy).
	o.phones["101"].Respond(b, 200, "OK", calleeSDP)
	ok := callers[0].WaitResponse(200)
	callers[0].Send(callers[0].InDialog("ACK", invs[0], ok, 1))
	waitPhrase(t, callers[2], invs[2], 182, queuedPhrase(1))
	o.quiet(t, map[string]bool{b.CallID().Value(): true}, "101")

	callers[2].Send(cancelOf(invs[2]))
	ackFinal(callers[2], invs[2], callers[2].WaitResponse(487))
	hangUp(t, o.tp, callers[0], o.phones["101"], invs[0], ok, 2)
	s := o.tp.Queues().Stats("sales")
	if s.Waiting != 0 || s.Answered != 1 || s.Abandoned != 2 || s.LongestWait != 0 {
		t.Fatalf("stats %+v", s)
	}
	if got := o.statsBecome(t, "w=0 ans=1 ab=2 to=0 full=0"); got != "w=0 ans=1 ab=2 to=0 full=0" {
		t.Fatalf("pbx.queue_stats: %q", got)
	}
}

func queuedPhrase(pos int) string { return "Queued (position " + string(rune('0'+pos)) + ")" }

// TestQueueMaxWaitAndFull: with its one agent paused, a queue of at most one caller turns the
// second away with 486 and gives the first 408 when its wait is over.
func TestQueueMaxWaitAndFull(t *testing.T) {
	o := newCallCentre(t, "sqlite::memory:", store.Queue{Name: "sales", MaxLen: 1, MaxWait: 1}, "101")
	if _, err := o.tp.store.UpdateQueueMembers(t.Context(), "sales", "101", store.QueueMemberPatch{Paused: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	first := o.call("sales")
	waitPhrase(t, o.caller, first, 182, queuedPhrase(1))
	second := newClient(t, o.tp.addr)
	_, rs := dial(t, second, "sales")
	if r := final(rs); r.StatusCode != 486 || len(reasons(rs, 182)) != 0 {
		t.Fatalf("second caller: %v, want 486 without 182", codes(rs))
	}
	start := time.Now()
	rs = awaitFinal(t, o.caller, first, 5*time.Second)
	if r := final(rs); r.StatusCode != 408 {
		t.Fatalf("first caller: %v, want 408", codes(rs))
	}
	if waited := time.Since(start); waited > 1500*time.Millisecond {
		t.Fatalf("408 after %v, max wait 1 s", waited)
	}
	o.quiet(t, nil, "101")
	if got := o.statsBecome(t, "w=0 ans=0 ab=0 to=1 full=1"); got != "w=0 ans=0 ab=0 to=1 full=1" {
		t.Fatalf("pbx.queue_stats: %q", got)
	}
	waitIdle(t, o.tp)
}

// TestLuaQueuePause: pbx.queue_pause pauses the caller (with a reason) and says false for a
// number that is no agent of the queue.
func TestLuaQueuePause(t *testing.T) {
	o := newCallCentre(t, "sqlite::memory:", store.Queue{Name: "sales"}, "101")
	if r := final(dialFrom(t, o.phones["101"], "101", "pause")); r.StatusCode != 603 {
		t.Fatalf("pause: %d", r.StatusCode)
	}
	q, err := o.tp.store.Queue(t.Context(), "sales")
	if err != nil || !q.Members[0].Paused || q.Members[0].PauseReason != "lunch" {
		t.Fatalf("after pbx.queue_pause: %v %+v", err, q)
	}
	if r := final(dialFrom(t, o.phones["101"], "102", "pause")); r.StatusCode != 404 {
		t.Fatalf("pause of no agent: %d", r.StatusCode)
	}
	waitIdle(t, o.tp)
}
