package b2bua_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
)

// parkConfig parks at 700 in slots 701-703.
func parkConfig(timeout time.Duration) b2bua.Config {
	return b2bua.Config{Park: b2bua.ParkConfig{Number: "700", Slots: []string{"701", "702", "703"}, Timeout: timeout}}
}

// parkRoute retrieves parked calls at their slots and routes the rest to the dialled callee.
func parkRoute(ctx context.Context, c *b2bua.Call) error {
	if c.Engine().IsParkSlot(c.Callee()) {
		_, err := c.Unpark(ctx, c.Callee())
		return err
	}
	return b2buatest.DialCallee(ctx, c)
}

// parkedCall has 100 call 200, and 200 park 100 with a blind transfer to 700. It returns the
// caller's INVITE and 200 and the final NOTIFY's sipfrag.
func parkedCall(t *testing.T, s *b2buatest.Server, caller, callee *b2buatest.Phone) (*sip.Request, *sip.Response, string) {
	t.Helper()
	inv, ok, bInv := answeredCall(t, s, caller, callee)
	callee.Send(refer(callee, bInv, 5, "<sip:700@pbx.test>"))
	callee.WaitResponse(202)
	frag := notifies(t, callee)
	callee.Respond(callee.WaitRequest(sip.BYE), 200, "OK", "")
	s.WaitEvent(inv.CallID().Value(), b2bua.CallParked)
	return inv, ok, frag
}

// TestCallParkAndRetrieve: 200 parks 100 at 701 (the final NOTIFY says so, and 200 is released);
// 300 dials 701: 100 is re-INVITEd with 300's session and 300 answered with 100's. 300's BYE
// reaches 100; the record has 100 with 200, then 100 with 300, and the slot is free again.
func TestCallParkAndRetrieve(t *testing.T) {
	s := b2buatest.NewServer(t, parkConfig(time.Minute), parkRoute)
	caller, callee, retriever := s.Phone(t), s.Phone(t), s.Phone(t)
	s.Register("200", callee)
	inv, _, frag := parkedCall(t, s, caller, callee)
	if !strings.Contains(frag, "SIP/2.0 200 Parked at 701") {
		t.Fatalf("final NOTIFY %q does not name the slot", frag)
	}
	if got := s.Engine.Parked("701"); got != inv.CallID().Value() {
		t.Fatalf("slot 701 holds %q", got)
	}

	msg, rInv := retriever.Invite("300", "701", nil, pickerSDP)
	retriever.Send(msg)
	re := caller.WaitRequest(sip.INVITE)
	if re.CallID().Value() != inv.CallID().Value() || !strings.Contains(string(re.Body()), "m=audio 6000") {
		t.Fatalf("re-INVITE to the parked caller in %s with %q", re.CallID().Value(), re.Body())
	}
	caller.Respond(re, 200, "OK", b2buatest.SDP)
	caller.WaitRequest(sip.ACK)
	rOK := retriever.WaitResponse(200)
	if !strings.Contains(string(rOK.Body()), "m=audio 4000") {
		t.Fatalf("the retriever's answer %q is not the caller's session", rOK.Body())
	}
	retriever.Send(retriever.InDialog("ACK", rInv, rOK, 1))
	for deadline := time.Now().Add(2 * time.Second); s.Engine.Parked("701") != ""; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("slot 701 still taken after the retrieval")
		}
	}
	retriever.Send(retriever.InDialog("BYE", rInv, rOK, 2))
	retriever.WaitResponse(200)
	caller.Respond(caller.WaitRequest(sip.BYE), 200, "OK", "")
	s.WaitIdle()
	rec := s.Record(inv.CallID().Value())
	segs := rec.Segments
	if len(segs) != 2 || segs[0].Callee != "200" || segs[0].EndReason != "parked" ||
		segs[1].Caller != "100" || segs[1].Callee != "300" || rec.Callee != "300" {
		t.Fatalf("record: %+v", rec)
	}
	s.WaitEvent(inv.CallID().Value(), b2bua.CallRetrieved)
}

// TestCallParkEmptySlot: dialling a slot with nothing parked gets 404.
func TestCallParkEmptySlot(t *testing.T) {
	s := b2buatest.NewServer(t, parkConfig(time.Minute), parkRoute)
	p := s.Phone(t)
	msg, inv := p.Invite("300", "702", nil)
	p.Send(msg)
	p.AckFinal(inv, p.WaitResponse(404))
}

// TestCallParkTimeoutRingsBack: nobody retrieves the parked call: after the park timeout the
// parker is rung back with the parked party's session, answers, and talks to it again.
func TestCallParkTimeoutRingsBack(t *testing.T) {
	s := b2buatest.NewServer(t, parkConfig(300*time.Millisecond), parkRoute)
	caller, callee := s.Phone(t), s.Phone(t)
	s.Register("200", callee)
	inv, ok, _ := parkedCall(t, s, caller, callee)
	back := callee.WaitRequest(sip.INVITE)
	if back.From().Address.User != "100" || !strings.Contains(string(back.Body()), "m=audio 4000") {
		t.Fatalf("ring-back from %q with %q", back.From().Address.User, back.Body())
	}
	callee.Respond(back, 180, "Ringing", "")
	callee.Respond(back, 200, "OK", b2buatest.CalleeSDP)
	callee.WaitRequest(sip.ACK)
	re := caller.WaitRequest(sip.INVITE)
	caller.Respond(re, 200, "OK", b2buatest.SDP)
	caller.WaitRequest(sip.ACK)
	// The caller hangs up: the BYE reaches the parker in the ring-back's dialog.
	caller.Send(caller.InDialog("BYE", inv, ok, 2))
	caller.WaitResponse(200)
	bye := callee.WaitRequest(sip.BYE)
	if bye.CallID().Value() != back.CallID().Value() {
		t.Fatalf("BYE in dialog %s, want the ring-back's", bye.CallID().Value())
	}
	callee.Respond(bye, 200, "OK", "")
	s.WaitIdle()
	if rec := s.Record(inv.CallID().Value()); len(rec.Segments) != 2 || rec.Segments[1].Callee != "200" {
		t.Fatalf("record: %+v", rec)
	}
}

// TestCallParkTimeoutUnanswered: the parker does not take the ring-back (486): the parked party
// is hung up and the slot freed.
func TestCallParkTimeoutUnanswered(t *testing.T) {
	s := b2buatest.NewServer(t, parkConfig(300*time.Millisecond), parkRoute)
	caller, callee := s.Phone(t), s.Phone(t)
	s.Register("200", callee)
	inv, _, _ := parkedCall(t, s, caller, callee)
	back := callee.WaitRequest(sip.INVITE)
	callee.Respond(back, 486, "Busy Here", "")
	caller.Respond(caller.WaitRequest(sip.BYE), 200, "OK", "")
	s.WaitIdle()
	if rec := s.Record(inv.CallID().Value()); !strings.Contains(rec.Reason, "park timeout") || rec.HangupBy != "pbx" {
		t.Fatalf("record: %+v", rec)
	}
	if s.Engine.Parked("701") != "" {
		t.Fatal("slot 701 still taken")
	}
}
