package b2bua_test

import (
	"context"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
)

// pickupRoute routes **NNN to a directed pickup of NNN and anything else to the dialled callee.
func pickupRoute(ctx context.Context, c *b2bua.Call) error {
	if ext, ok := strings.CutPrefix(c.Callee(), "**"); ok {
		_, err := c.Pickup(ctx, ext)
		return err
	}
	return b2buatest.DialCallee(ctx, c)
}

// pickerSDP is the picker's offer: PCMA and PCMU on port 6000.
const pickerSDP = "v=0\r\no=- 3 3 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 0\r\n"

// ringing has 100 call 101, whose phone rings (180); it returns the caller's INVITE and the
// INVITE the phone got.
func ringing(t *testing.T, caller, phone *b2buatest.Phone) (*sip.Request, *sip.Request) {
	t.Helper()
	msg, inv := caller.Invite("100", "101", nil)
	caller.Send(msg)
	bInv := phone.WaitRequest(sip.INVITE)
	phone.Respond(bInv, 180, "Ringing", "")
	caller.WaitResponse(180)
	return inv, bInv
}

// TestCallDirectedPickup: 100 calls 101; while 101 rings, 102 dials **101. 101 gets CANCEL; the
// caller gets 200 with the picker's address and the common codec (PCMU), the picker 200 with the
// caller's address; both ACK. The picker's BYE reaches the caller in the caller's dialog, and the
// record says 100 talked to 102.
func TestCallDirectedPickup(t *testing.T) {
	s := b2buatest.NewServer(t, b2bua.Config{}, pickupRoute)
	caller, phone, picker := s.Phone(t), s.Phone(t), s.Phone(t)
	s.Register("101", phone)
	inv, bInv := ringing(t, caller, phone)

	msg, pInv := picker.Invite("102", "**101", nil, pickerSDP)
	picker.Send(msg)
	phone.AcceptCancel(bInv)
	ok := caller.WaitResponse(200)
	if body := string(ok.Body()); !strings.Contains(body, "m=audio 6000 RTP/AVP 0\r\n") || !strings.Contains(body, "a=sendrecv") {
		t.Fatalf("the caller's answer is not the picker's session with PCMU:\n%s", body)
	}
	pOK := picker.WaitResponse(200)
	if body := string(pOK.Body()); !strings.Contains(body, "m=audio 4000 RTP/AVP 0\r\n") {
		t.Fatalf("the picker's answer is not the caller's session with PCMU:\n%s", body)
	}
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	picker.Send(picker.InDialog("ACK", pInv, pOK, 1))

	picker.Send(picker.InDialog("BYE", pInv, pOK, 2))
	picker.WaitResponse(200)
	bye := caller.WaitRequest(sip.BYE)
	if bye.CallID().Value() != inv.CallID().Value() {
		t.Fatalf("BYE to the caller in dialog %s", bye.CallID().Value())
	}
	caller.Respond(bye, 200, "OK", "")
	s.WaitIdle()
	rec := s.Record(inv.CallID().Value())
	if len(rec.Segments) != 1 || rec.Segments[0].Caller != "100" || rec.Segments[0].Callee != "102" ||
		rec.Dialled != "101" || rec.Callee != "102" || rec.HangupBy != "callee" {
		t.Fatalf("record: %+v", rec)
	}
	for _, r := range s.Records() {
		if r.CallID == pInv.CallID().Value() {
			t.Fatalf("the picker's call has a record of its own: %+v", r)
		}
	}
}

// TestCallPickupNothingRinging: **101 with nothing ringing at 101 gets 480, and a call answered
// meanwhile is not picked up.
func TestCallPickupNothingRinging(t *testing.T) {
	s := b2buatest.NewServer(t, b2bua.Config{}, pickupRoute)
	caller, phone, picker := s.Phone(t), s.Phone(t), s.Phone(t)
	s.Register("101", phone)
	msg, pInv := picker.Invite("102", "**101", nil, pickerSDP)
	picker.Send(msg)
	picker.AckFinal(pInv, picker.WaitResponse(480))

	callee := s.Phone(t)
	s.Register("200", callee)
	inv, ok, _ := answeredCall(t, s, caller, callee)
	msg, pInv = picker.Invite("102", "**200", nil, pickerSDP)
	picker.Send(msg)
	picker.AckFinal(pInv, picker.WaitResponse(480))
	hangUp(t, s, caller, callee, inv, ok, 2)
}

// TestCallPickupByReplacesEarlyOnly: a phone picks the ringing call up the way a busy lamp key
// does, with INVITE and Replaces naming the ringing B-leg's early dialog, early-only.
func TestCallPickupByReplacesEarlyOnly(t *testing.T) {
	s := b2buatest.NewServer(t, b2bua.Config{}, pickupRoute)
	caller, phone, picker := s.Phone(t), s.Phone(t), s.Phone(t)
	s.Register("101", phone)
	inv, bInv := ringing(t, caller, phone)
	pbxTag, _ := bInv.From().Params.Get("tag")
	replaces := "Replaces: " + bInv.CallID().Value() + ";to-tag=" + pbxTag + ";from-tag=callee-tag;early-only"
	msg, pInv := picker.Invite("102", "101", []string{replaces}, pickerSDP)
	picker.Send(msg)
	phone.AcceptCancel(bInv)
	ok := caller.WaitResponse(200)
	pOK := picker.WaitResponse(200)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	picker.Send(picker.InDialog("ACK", pInv, pOK, 1))
	// The caller hangs up: the BYE reaches the picker.
	b2buatest.HangUp(t, caller, picker, inv, ok, 2)
	s.WaitIdle()
	if rec := s.Record(inv.CallID().Value()); rec.Callee != "102" {
		t.Fatalf("record: %+v", rec)
	}
}
