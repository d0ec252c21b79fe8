package pbx_test

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// storePatchGroup puts an extension in a pickup group.
func storePatchGroup(g string) store.ExtensionPatch { return store.ExtensionPatch{PickupGroup: &g} }

// pickSDP is a picker's or retriever's offer: PCMU on port 6000.
const pickSDP = "v=0\r\no=- 3 3 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n"

// ringAt has the office's caller (100) call number, whose phone rings; it returns the caller's
// INVITE and the INVITE the phone got.
func (o *office) ringAt(t *testing.T, number string) (*sip.Request, *sip.Request) {
	t.Helper()
	inv := o.call(number)
	bInv := o.ring(number)
	o.phones[number].Respond(bInv, 180, "Ringing", "")
	o.caller.WaitResponse(180)
	return inv, bInv
}

// pickUp has the phone of picker dial code: the ringing phone of rung gets CANCEL, the caller and
// the picker get 200 and ACK, the picker hangs up and the BYE reaches the caller. The caller's
// record names the picker as the callee.
func (o *office) pickUp(t *testing.T, picker, code, rung string, inv, bInv *sip.Request) {
	t.Helper()
	p := o.phones[picker]
	msg, pInv := p.Invite(picker, code, nil, pickSDP)
	p.Send(msg)
	o.phones[rung].AcceptCancel(bInv)
	ok := o.caller.WaitResponse(200)
	pOK := p.WaitResponse(200)
	if !strings.Contains(string(ok.Body()), "m=audio 6000") || !strings.Contains(string(pOK.Body()), "m=audio 4000") {
		t.Fatalf("answers do not connect the two:\ncaller got %s\npicker got %s", ok.Body(), pOK.Body())
	}
	o.caller.Send(o.caller.InDialog("ACK", inv, ok, 1))
	p.Send(p.InDialog("ACK", pInv, pOK, 1))
	p.Send(p.InDialog("BYE", pInv, pOK, 2))
	p.WaitResponse(200)
	o.caller.Respond(o.caller.WaitRequest(sip.BYE), 200, "OK", "")
	waitIdle(t, o.tp)
	cdr := lastCDR(t, o.tp, inv.CallID().Value())
	if cdr.Callee != picker || len(cdr.Segments) != 1 || cdr.Segments[0].Callee != picker || cdr.Dialled != rung {
		t.Fatalf("record: %+v", cdr)
	}
}

// TestPBXDirectedPickup: default routing answers **101 by picking up the call ringing at 101.
func TestPBXDirectedPickup(t *testing.T) {
	o := newOffice(t, "sqlite::memory:", pbx.Config{}, []string{"101", "102"})
	inv, bInv := o.ringAt(t, "101")
	o.pickUp(t, "102", "**101", "101", inv, bInv)
}

// TestPBXPickupNothingRinging: **101 with nothing ringing at 101 gets 480 with a Warning that
// says so; so does *8 from an extension in no pickup group.
func TestPBXPickupNothingRinging(t *testing.T) {
	o := newOffice(t, "sqlite::memory:", pbx.Config{}, []string{"101", "102"})
	p := o.phones["102"]
	for code, why := range map[string]string{"**101": "nothing is ringing at 101", "*8": "extension 102 is in no pickup group"} {
		msg, inv := p.Invite("102", code, nil, pickSDP)
		p.Send(msg)
		res := p.WaitResponse(480)
		p.AckFinal(inv, res)
		if !strings.Contains(header(res, "Warning"), why) {
			t.Errorf("%s: Warning %q, want %q", code, header(res, "Warning"), why)
		}
	}
}

// TestPBXGroupPickup: 101 and 102 share the pickup group "sales", 103 does not; *8 from 103
// finds nothing, *8 from 102 picks up the call ringing at 101.
func TestPBXGroupPickup(t *testing.T) {
	o := newOffice(t, "sqlite::memory:", pbx.Config{}, []string{"101", "102", "103"})
	o.set(t, "101", storePatchGroup("sales"))
	o.set(t, "102", storePatchGroup("sales"))
	o.set(t, "103", storePatchGroup("support"))
	inv, bInv := o.ringAt(t, "101")
	p := o.phones["103"]
	msg, pInv := p.Invite("103", "*8", nil, pickSDP)
	p.Send(msg)
	p.AckFinal(pInv, p.WaitResponse(480))
	o.pickUp(t, "102", "*8", "101", inv, bInv)
}

// TestPBXParkAndRetrieve: 101 answers 100 and parks it with a blind transfer to 700 (the final
// NOTIFY names slot 701); 102 dials 701 and talks to 100.
func TestPBXParkAndRetrieve(t *testing.T) {
	o := newOffice(t, "sqlite::memory:", pbx.Config{}, []string{"101", "102"})
	inv := o.call("101")
	bInv := o.ring("101")
	parker := o.phones["101"]
	parker.Respond(bInv, 200, "OK", calleeSDP)
	ok := o.caller.WaitResponse(200)
	o.caller.Send(o.caller.InDialog("ACK", inv, ok, 1))
	parker.WaitRequest(sip.ACK)
	parker.Send(parker.InDialogAsCallee("REFER", bInv, 5, "Contact: <"+parker.Contact("101")+">\r\nRefer-To: <sip:700@pbx.test>\r\n"))
	parker.WaitResponse(202)
	for {
		n := parker.WaitRequest(sip.NOTIFY)
		parker.Respond(n, 200, "OK", "")
		if strings.HasPrefix(header(n, "Subscription-State"), "terminated") {
			if !strings.Contains(string(n.Body()), "200 Parked at 701") {
				t.Fatalf("final NOTIFY %q", n.Body())
			}
			break
		}
	}
	parker.Respond(parker.WaitRequest(sip.BYE), 200, "OK", "")

	r := o.phones["102"]
	msg, rInv := r.Invite("102", "701", nil, pickSDP)
	r.Send(msg)
	re := o.caller.WaitRequest(sip.INVITE)
	o.caller.Respond(re, 200, "OK", b2buatest.SDP)
	o.caller.WaitRequest(sip.ACK)
	rOK := r.WaitResponse(200)
	r.Send(r.InDialog("ACK", rInv, rOK, 1))
	hangUp(t, o.tp, o.caller, r, inv, ok, 3)
	cdr := lastCDR(t, o.tp, inv.CallID().Value())
	if len(cdr.Segments) != 2 || cdr.Segments[0].EndReason != "parked" || cdr.Segments[1].Callee != "102" {
		t.Fatalf("record: %+v", cdr)
	}
}
