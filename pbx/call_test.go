package pbx_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

const calleeSDP = "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n"

// callPBX is a PBX whose callers come from a trusted network, with extension 200 registered at
// each of the callee clients returned.
func callPBX(t *testing.T, cfg pbx.Config, callees int) (*testPBX, *uaClient, []*uaClient) {
	t.Helper()
	cfg.Trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	tp := startPBX(t, cfg)
	tp.addExt(t, "200", "pw200")
	var cs []*uaClient
	for range callees {
		callee := newClient(t, tp.addr)
		err := tp.store.PutBinding(context.Background(), store.Binding{Extension: "200", Contact: "sip:200@" + callee.addr(),
			Source: callee.addr(), Transport: "udp", ExpiresAt: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, callee)
	}
	return tp, newClient(t, tp.addr), cs
}

func invite(c *uaClient) (string, *sip.Request) {
	msg := c.build(reqSpec{method: "INVITE", from: "100", to: "200", headers: []string{
		"Contact: <sip:100@" + c.addr() + ">", "Content-Type: application/sdp"}, body: sdpBody})
	m, err := sip.ParseMessage([]byte(msg))
	if err != nil {
		panic(err)
	}
	return msg, m.(*sip.Request)
}

// waitIdle waits until the PBX has no call and no dialog left, or fails.
func waitIdle(t *testing.T, tp *testPBX) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for tp.ActiveCalls() != 0 || tp.ActiveDialogs() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("call state left behind: %d calls, %d dialogs", tp.ActiveCalls(), tp.ActiveDialogs())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func lastCDR(t *testing.T, tp *testPBX, callID string) store.CDR {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		cdrs, err := tp.store.CDRs(context.Background(), store.CDRFilter{CallID: callID})
		if err != nil {
			t.Fatal(err)
		}
		if len(cdrs) == 1 {
			return cdrs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d CDRs for %s, want 1", len(cdrs), callID)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// answeredCall sets up a call to 200 and returns what both ends saw.
func answeredCall(t *testing.T, tp *testPBX, caller, callee *uaClient) (inv *sip.Request, ok *sip.Response, bInv *sip.Request) {
	t.Helper()
	msg, inv := invite(caller)
	caller.send(msg)
	caller.waitResponse(100)
	bInv = callee.waitRequest(sip.INVITE)
	callee.respond(bInv, 180, "Ringing", "")
	if r := caller.waitResponse(180); r.To().Params == nil {
		t.Fatal("180 without To tag")
	}
	callee.respond(bInv, 200, "OK", calleeSDP)
	ok = caller.waitResponse(200)
	callee.waitRequest(sip.ACK)
	caller.send(caller.inDialog("ACK", inv, ok, 1))
	return inv, ok, bInv
}

func TestCallTopologyHidingAndByeFromCaller(t *testing.T) {
	tp, caller, callees := callPBX(t, pbx.Config{}, 1)
	callee := callees[0]
	inv, ok, bInv := answeredCall(t, tp, caller, callee)

	// The callee sees a dialog of the PBX's, not the caller's.
	if bInv.CallID().Value() == inv.CallID().Value() {
		t.Error("B-leg reuses the caller's Call-ID")
	}
	ft, _ := bInv.From().Params.Get("tag")
	ct, _ := inv.From().Params.Get("tag")
	if ft == ct {
		t.Error("B-leg reuses the caller's From tag")
	}
	if b, _ := bInv.Via().Params.Get("branch"); !strings.HasPrefix(b, tp.BranchPrefix()) || len(bInv.GetHeaders("Via")) != 1 {
		t.Errorf("B-leg Via %q: want one Via with the PBX's branch prefix", bInv.GetHeaders("Via"))
	}
	if target, _ := remoteTarget(bInv); strings.Contains(target, caller.addr()) || strings.Contains(bInv.String(), caller.addr()) {
		t.Errorf("the caller's address reached the callee:\n%s", bInv)
	}
	if string(bInv.Body()) != sdpBody {
		t.Errorf("SDP not passed through: %q", bInv.Body())
	}
	if bInv.Recipient.User != "200" {
		t.Errorf("B-leg Request-URI %s", bInv.Recipient.String())
	}
	// ... and the caller one of the PBX's, with the callee's SDP.
	if target, _ := remoteTarget(ok); strings.Contains(target, callee.addr()) || strings.Contains(ok.String(), callee.addr()) {
		t.Errorf("the callee's address reached the caller:\n%s", ok)
	}
	if string(ok.Body()) != calleeSDP {
		t.Errorf("answer SDP %q", ok.Body())
	}
	if tp.ActiveCalls() != 1 || tp.ActiveDialogs() != 2 {
		t.Fatalf("during the call: %d calls, %d dialogs", tp.ActiveCalls(), tp.ActiveDialogs())
	}

	caller.send(caller.inDialog("BYE", inv, ok, 2))
	caller.waitResponse(200)
	bye := callee.waitRequest(sip.BYE)
	if bye.CallID().Value() != bInv.CallID().Value() {
		t.Errorf("BYE in another dialog: %s", bye.CallID().Value())
	}
	callee.respond(bye, 200, "OK", "")
	waitIdle(t, tp)
	cdr := lastCDR(t, tp, inv.CallID().Value())
	if cdr.Disposition != store.Answered || cdr.HangupBy != "caller" || cdr.Status != 200 || cdr.AnswerAt == nil || cdr.Callee != "200" || cdr.Caller != "100" {
		t.Fatalf("CDR %+v", cdr)
	}
}

func TestCallByeFromCallee(t *testing.T) {
	tp, caller, callees := callPBX(t, pbx.Config{}, 1)
	inv, _, bInv := answeredCall(t, tp, caller, callees[0])
	callee := callees[0]
	bye := "BYE sip:200@" + tp.addr.String() + " SIP/2.0\r\nVia: SIP/2.0/UDP " + callee.addr() + ";branch=z9hG4bK-cbye;rport\r\n" +
		"Max-Forwards: 70\r\nFrom: " + bInv.To().Value() + ";tag=callee-tag\r\nTo: " + bInv.From().Value() + "\r\n" +
		"Call-ID: " + bInv.CallID().Value() + "\r\nCSeq: 7 BYE\r\nContent-Length: 0\r\n\r\n"
	callee.send(bye)
	callee.waitResponse(200)
	cb := caller.waitRequest(sip.BYE)
	if cb.CallID().Value() != inv.CallID().Value() {
		t.Fatalf("BYE to the caller in dialog %s", cb.CallID().Value())
	}
	caller.respond(cb, 200, "OK", "")
	waitIdle(t, tp)
	if cdr := lastCDR(t, tp, inv.CallID().Value()); cdr.HangupBy != "callee" || cdr.Disposition != store.Answered {
		t.Fatalf("CDR %+v", cdr)
	}
}

func TestCallBusyPassesThrough(t *testing.T) {
	tp, caller, callees := callPBX(t, pbx.Config{}, 1)
	msg, inv := invite(caller)
	caller.send(msg)
	b := callees[0].waitRequest(sip.INVITE)
	callees[0].respond(b, 486, "Busy Here", "")
	res := caller.waitResponse(486)
	if res.Reason != "Busy Here" {
		t.Fatalf("reason %q", res.Reason)
	}
	callees[0].waitRequest(sip.ACK) // the PBX's transaction acknowledges the 486
	waitIdle(t, tp)
	if cdr := lastCDR(t, tp, inv.CallID().Value()); cdr.Disposition != store.Busy || cdr.Status != 486 {
		t.Fatalf("CDR %+v", cdr)
	}
}

func TestCallCancelWhileRinging(t *testing.T) {
	tp, caller, callees := callPBX(t, pbx.Config{}, 1)
	msg, inv := invite(caller)
	caller.send(msg)
	b := callees[0].waitRequest(sip.INVITE)
	callees[0].respond(b, 180, "Ringing", "")
	caller.waitResponse(180)
	cancel := "CANCEL " + inv.Recipient.String() + " SIP/2.0\r\nVia: " + inv.Via().Value() + "\r\nMax-Forwards: 70\r\n" +
		"From: " + inv.From().Value() + "\r\nTo: " + inv.To().Value() + "\r\nCall-ID: " + inv.CallID().Value() + "\r\n" +
		"CSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n"
	caller.send(cancel)
	r487 := caller.waitResponse(487)
	caller.send("ACK " + inv.Recipient.String() + " SIP/2.0\r\nVia: " + inv.Via().Value() + "\r\nMax-Forwards: 70\r\n" +
		"From: " + inv.From().Value() + "\r\nTo: " + r487.To().Value() + "\r\nCall-ID: " + inv.CallID().Value() + "\r\n" +
		"CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
	bc := callees[0].waitRequest(sip.CANCEL)
	callees[0].respond(bc, 200, "OK", "")
	callees[0].respond(b, 487, "Request Terminated", "")
	waitIdle(t, tp)
	if cdr := lastCDR(t, tp, inv.CallID().Value()); cdr.Disposition != store.Cancelled || cdr.HangupBy != "caller" {
		t.Fatalf("CDR %+v", cdr)
	}
}

func TestCallRingTimeout(t *testing.T) {
	tp, caller, callees := callPBX(t, pbx.Config{RingTimeout: 300 * time.Millisecond}, 1)
	msg, inv := invite(caller)
	caller.send(msg)
	b := callees[0].waitRequest(sip.INVITE)
	callees[0].respond(b, 180, "Ringing", "")
	res := caller.waitResponse(480)
	if res.Reason != "Temporarily Unavailable" {
		t.Fatalf("reason %q", res.Reason)
	}
	bc := callees[0].waitRequest(sip.CANCEL)
	callees[0].respond(bc, 200, "OK", "")
	callees[0].respond(b, 487, "Request Terminated", "")
	waitIdle(t, tp)
	if cdr := lastCDR(t, tp, inv.CallID().Value()); cdr.Disposition != store.NoAnswer || cdr.Status != 480 {
		t.Fatalf("CDR %+v", cdr)
	}
}

func TestCallForksToEveryContact(t *testing.T) {
	tp, caller, callees := callPBX(t, pbx.Config{}, 2)
	msg, inv := invite(caller)
	caller.send(msg)
	b1 := callees[0].waitRequest(sip.INVITE)
	b2 := callees[1].waitRequest(sip.INVITE)
	if b1.CallID().Value() == b2.CallID().Value() {
		t.Error("forks share a Call-ID")
	}
	callees[1].respond(b2, 180, "Ringing", "")
	callees[0].respond(b1, 180, "Ringing", "")
	callees[1].respond(b2, 200, "OK", calleeSDP)
	ok := caller.waitResponse(200)
	callees[1].waitRequest(sip.ACK)
	c := callees[0].waitRequest(sip.CANCEL) // the losing fork is cancelled
	callees[0].respond(c, 200, "OK", "")
	callees[0].respond(b1, 487, "Request Terminated", "")
	caller.send(caller.inDialog("ACK", inv, ok, 1))
	caller.send(caller.inDialog("BYE", inv, ok, 2))
	caller.waitResponse(200)
	bye := callees[1].waitRequest(sip.BYE)
	callees[1].respond(bye, 200, "OK", "")
	waitIdle(t, tp)
}
