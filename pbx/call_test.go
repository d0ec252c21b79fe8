package pbx_test

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strconv"
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
	cancel := cancelOf(inv)
	caller.send(cancel)
	r487 := caller.waitResponse(487)
	ackFinal(caller, inv, r487)
	callees[0].acceptCancel(b)
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
	callees[0].acceptCancel(b)
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
	callees[0].acceptCancel(b1) // the losing fork is cancelled
	caller.send(caller.inDialog("ACK", inv, ok, 1))
	hangUp(t, tp, caller, callees[1], inv, ok, 2)
}

// TestCallWithoutAck: the caller never ACKs the 200. The PBX retransmits it (T1, then doubling),
// and when AckTimeout passes it hangs up both sides.
func TestCallWithoutAck(t *testing.T) {
	tp, caller, callees := callPBX(t, pbx.Config{AckTimeout: 1500 * time.Millisecond}, 1)
	msg, inv := invite(caller)
	caller.send(msg)
	b := callees[0].waitRequest(sip.INVITE)
	callees[0].respond(b, 200, "OK", calleeSDP)
	callees[0].waitRequest(sip.ACK)
	first := caller.waitResponse(200)
	again := caller.waitResponse(200) // retransmitted after T1 (500 ms)
	if again.CallID().Value() != first.CallID().Value() {
		t.Fatal("retransmission of another response")
	}
	bye := callees[0].waitRequest(sip.BYE)
	callees[0].respond(bye, 200, "OK", "")
	cb := caller.waitRequest(sip.BYE)
	caller.respond(cb, 200, "OK", "")
	waitIdle(t, tp)
	if cdr := lastCDR(t, tp, inv.CallID().Value()); cdr.HangupBy != "pbx" || !strings.Contains(cdr.Reason, "no ACK") {
		t.Fatalf("CDR %+v", cdr)
	}
}

// reinviteFrom builds a re-INVITE in the caller's dialog with body.
func reinviteFrom(c *uaClient, inv *sip.Request, ok *sip.Response, cseq int, body string) string {
	m := c.inDialog("INVITE", inv, ok, cseq)
	m = strings.Replace(m, "Content-Length: 0\r\n\r\n", "Contact: <sip:100@"+c.addr()+">\r\nContent-Type: application/sdp\r\n"+
		"Content-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body, 1)
	return m
}

// TestCallHoldAndResume: re-INVITEs from the caller (sendonly, then sendrecv) reach the callee in
// its own dialog and the answers come back.
func TestCallHoldAndResume(t *testing.T) {
	tp, caller, callees := callPBX(t, pbx.Config{}, 1)
	callee := callees[0]
	inv, ok, bInv := answeredCall(t, tp, caller, callee)
	for i, dir := range []string{"sendonly", "sendrecv"} {
		cseq := 2 + i
		caller.send(reinviteFrom(caller, inv, ok, cseq, sdpBody+"a="+dir+"\r\n"))
		re := callee.waitRequest(sip.INVITE)
		if re.CallID().Value() != bInv.CallID().Value() || !strings.Contains(string(re.Body()), "a="+dir) {
			t.Fatalf("re-INVITE %d at the callee: call %s, body %q", i, re.CallID().Value(), re.Body())
		}
		if tag, _ := re.To().Params.Get("tag"); tag != "callee-tag" {
			t.Fatalf("re-INVITE outside the dialog: To tag %q", tag)
		}
		answer := strings.Replace(calleeSDP, "t=0 0\r\n", "t=0 0\r\na=recvonly\r\n", 1)
		callee.respond(re, 200, "OK", answer)
		callee.waitRequest(sip.ACK)
		res := caller.waitResponse(200)
		if res.CSeq().SeqNo != uint32(cseq) || !strings.Contains(string(res.Body()), "a=recvonly") {
			t.Fatalf("answer to re-INVITE %d: CSeq %d body %q", i, res.CSeq().SeqNo, res.Body())
		}
		caller.send(caller.inDialog("ACK", inv, ok, cseq))
	}
	hangUp(t, tp, caller, callee, inv, ok, 10)
}

// TestCallReInviteGlare: while the caller's re-INVITE waits for the callee, the callee's own
// re-INVITE gets 491 Request Pending.
func TestCallReInviteGlare(t *testing.T) {
	tp, caller, callees := callPBX(t, pbx.Config{}, 1)
	callee := callees[0]
	inv, ok, bInv := answeredCall(t, tp, caller, callee)
	caller.send(reinviteFrom(caller, inv, ok, 2, sdpBody+"a=sendonly\r\n"))
	re := callee.waitRequest(sip.INVITE)
	// The callee's re-INVITE crosses it.
	cross := "INVITE sip:200@" + tp.addr.String() + " SIP/2.0\r\nVia: SIP/2.0/UDP " + callee.addr() + ";branch=z9hG4bK-glare;rport\r\n" +
		"Max-Forwards: 70\r\nFrom: " + bInv.To().Value() + ";tag=callee-tag\r\nTo: " + bInv.From().Value() + "\r\n" +
		"Call-ID: " + bInv.CallID().Value() + "\r\nCSeq: 9 INVITE\r\nContact: <sip:callee@" + callee.addr() + ">\r\n" +
		"Content-Type: application/sdp\r\nContent-Length: " + strconv.Itoa(len(calleeSDP)) + "\r\n\r\n" + calleeSDP
	callee.send(cross)
	if res := callee.waitResponse(491); res.Reason != "Request Pending" {
		t.Fatalf("glare answered %d %s", res.StatusCode, res.Reason)
	}
	callee.respond(re, 200, "OK", calleeSDP)
	caller.waitResponse(200)
	caller.send(caller.inDialog("ACK", inv, ok, 2))
	hangUp(t, tp, caller, callee, inv, ok, 3)
}

// TestCallViaNamesThePBX: requests the PBX sends carry its own address in the Via, with rport, so
// a phone that answers by the Via (not the source address) reaches the PBX.
func TestCallViaNamesThePBX(t *testing.T) {
	tp, caller, callees := callPBX(t, pbx.Config{}, 1)
	inv, ok, bInv := answeredCall(t, tp, caller, callees[0])
	via := bInv.Via()
	if via.Host != "127.0.0.1" || via.Port != tp.addr.Port {
		t.Fatalf("Via sent-by %s:%d, want the PBX at %s", via.Host, via.Port, tp.addr)
	}
	if _, ok := via.Params.Get("rport"); !ok {
		t.Fatal("Via without rport")
	}
	caller.send(caller.inDialog("BYE", inv, ok, 2))
	caller.waitResponse(200)
	bye := callees[0].waitRequest(sip.BYE)
	if v := bye.Via(); v.Host != "127.0.0.1" || v.Port != tp.addr.Port {
		t.Fatalf("BYE Via sent-by %s:%d", v.Host, v.Port)
	}
	callees[0].respond(bye, 200, "OK", "")
	waitIdle(t, tp)
}

// TestCallLimit: with MaxCalls 1, a second call while the first rings gets 503 with Retry-After.
func TestCallLimit(t *testing.T) {
	tp, caller, callees := callPBX(t, pbx.Config{MaxCalls: 1}, 1)
	msg, _ := invite(caller)
	caller.send(msg)
	b := callees[0].waitRequest(sip.INVITE)
	callees[0].respond(b, 180, "Ringing", "")
	caller.waitResponse(180)
	second := newClient(t, tp.addr)
	msg2, _ := invite(second)
	second.send(msg2)
	res := second.waitResponse(503)
	if res.Reason != "Service Unavailable" || header(res, "Retry-After") == "" {
		t.Fatalf("over the limit: %d %s Retry-After=%q", res.StatusCode, res.Reason, header(res, "Retry-After"))
	}
	callees[0].respond(b, 486, "Busy Here", "")
	caller.waitResponse(486)
	waitIdle(t, tp)
}

// TestCallCancelRacingAnswer: the caller CANCELs while the callee answers. The PBX has already
// cancelled its B-leg when the callee's 200 arrives, so it ACKs that 200 and hangs the callee up:
// nothing stays up on either side.
func TestCallCancelRacingAnswer(t *testing.T) {
	tp, caller, callees := callPBX(t, pbx.Config{}, 1)
	callee := callees[0]
	msg, inv := invite(caller)
	caller.send(msg)
	b := callee.waitRequest(sip.INVITE)
	callee.respond(b, 180, "Ringing", "")
	caller.waitResponse(180)
	caller.send(cancelOf(inv))
	caller.waitResponse(487)
	callee.waitRequest(sip.CANCEL) // the callee answers the INVITE instead, as if the two crossed
	callee.respond(b, 200, "OK", calleeSDP)
	ack := callee.waitRequest(sip.ACK)
	bye := callee.waitRequest(sip.BYE)
	if ack.CallID().Value() != b.CallID().Value() || bye.CallID().Value() != b.CallID().Value() {
		t.Fatal("ACK/BYE outside the callee's dialog")
	}
	if tag, _ := bye.To().Params.Get("tag"); tag != "callee-tag" {
		t.Fatalf("BYE To tag %q", tag)
	}
	callee.respond(bye, 200, "OK", "")
	waitIdle(t, tp)
	if cdr := lastCDR(t, tp, inv.CallID().Value()); cdr.Disposition != store.Cancelled {
		t.Fatalf("CDR %+v", cdr)
	}
}

// TestCallFollowsRedirect: a callee answering 302 sends the call on to its Contact; a redirect
// back to a contact already tried is not followed (no loop), and the caller never sees the
// callee's Contacts.
func TestCallFollowsRedirect(t *testing.T) {
	tp, caller, callees := callPBX(t, pbx.Config{}, 1)
	first := callees[0]
	second := newClient(t, tp.addr)
	msg, inv := invite(caller)
	caller.send(msg)
	b1 := first.waitRequest(sip.INVITE)
	res := sip.NewResponseFromRequest(b1, 302, "Moved Temporarily", nil)
	res.To().Params.Add("tag", "r1")
	res.AppendHeader(sip.NewHeader("Contact", "<sip:200@"+second.addr()+">"))
	first.send(res.String())
	first.waitRequest(sip.ACK) // the PBX's transaction acknowledges the 302
	b2 := second.waitRequest(sip.INVITE)
	if b2.Recipient.Host+":"+strconv.Itoa(b2.Recipient.Port) != second.addr() || string(b2.Body()) != sdpBody {
		t.Fatalf("redirected INVITE %s body %q", b2.Recipient.String(), b2.Body())
	}
	// The second contact redirects back to the first: already tried, so the call fails (480).
	back := sip.NewResponseFromRequest(b2, 302, "Moved Temporarily", nil)
	back.To().Params.Add("tag", "r2")
	back.AppendHeader(sip.NewHeader("Contact", "<sip:200@"+first.addr()+">"))
	second.send(back.String())
	final := caller.waitResponse(480)
	if final.GetHeader("Contact") != nil && strings.Contains(final.String(), second.addr()) {
		t.Fatalf("the callee's contact leaked to the caller:\n%s", final)
	}
	waitIdle(t, tp)
	if cdr := lastCDR(t, tp, inv.CallID().Value()); cdr.Status != 480 {
		t.Fatalf("CDR %+v", cdr)
	}
}

func TestCallRedirectAnswered(t *testing.T) {
	tp, caller, callees := callPBX(t, pbx.Config{}, 1)
	second := newClient(t, tp.addr)
	msg, inv := invite(caller)
	caller.send(msg)
	b1 := callees[0].waitRequest(sip.INVITE)
	res := sip.NewResponseFromRequest(b1, 301, "Moved Permanently", nil)
	res.To().Params.Add("tag", "r1")
	res.AppendHeader(sip.NewHeader("Contact", "<sip:200@"+second.addr()+">"))
	callees[0].send(res.String())
	b2 := second.waitRequest(sip.INVITE)
	second.respond(b2, 200, "OK", calleeSDP)
	ok := caller.waitResponse(200)
	second.waitRequest(sip.ACK)
	caller.send(caller.inDialog("ACK", inv, ok, 1))
	hangUp(t, tp, caller, second, inv, ok, 2)
}

// TestCallUnreachableContact: the only contact is registered over TCP on a port where nothing
// listens. The caller gets 503: the PBX could not reach the phone.
func TestCallUnreachableContact(t *testing.T) {
	tp, caller, _ := callPBX(t, pbx.Config{}, 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	err = tp.store.PutBinding(context.Background(), store.Binding{Extension: "200", Contact: "sip:200@" + dead + ";transport=tcp",
		Source: dead, Transport: "tcp", ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	msg, inv := invite(caller)
	caller.send(msg)
	if res := caller.waitResponse(503); res.Reason != "Service Unavailable" {
		t.Fatalf("reason %q", res.Reason)
	}
	waitIdle(t, tp)
	if cdr := lastCDR(t, tp, inv.CallID().Value()); cdr.Disposition != store.Failed || cdr.HangupBy != "pbx" {
		t.Fatalf("CDR %+v", cdr)
	}
}

// TestCallEarlyMediaAndInfo: a 183 reaches the caller with the callee's early-media SDP, and an
// INFO (DTMF) and an OPTIONS in the call reach the callee in its own dialog, their answers coming
// back.
func TestCallEarlyMediaAndInfo(t *testing.T) {
	tp, caller, callees := callPBX(t, pbx.Config{}, 1)
	callee := callees[0]
	msg, inv := invite(caller)
	caller.send(msg)
	b := callee.waitRequest(sip.INVITE)
	callee.respond(b, 183, "Session Progress", calleeSDP)
	early := caller.waitResponse(183)
	if string(early.Body()) != calleeSDP {
		t.Fatalf("183 body %q", early.Body())
	}
	callee.respond(b, 200, "OK", calleeSDP)
	ok := caller.waitResponse(200)
	callee.waitRequest(sip.ACK)
	caller.send(caller.inDialog("ACK", inv, ok, 1))
	dtmf := "Signal=5\r\nDuration=160\r\n"
	info := strings.Replace(caller.inDialog("INFO", inv, ok, 2), "Content-Length: 0\r\n\r\n",
		"Content-Type: application/dtmf-relay\r\nContent-Length: "+strconv.Itoa(len(dtmf))+"\r\n\r\n"+dtmf, 1)
	caller.send(info)
	got := callee.waitRequest(sip.INFO)
	if got.CallID().Value() != b.CallID().Value() || string(got.Body()) != dtmf || got.ContentType().Value() != "application/dtmf-relay" {
		t.Fatalf("INFO at the callee: call %s, %s %q", got.CallID().Value(), got.ContentType().Value(), got.Body())
	}
	callee.respond(got, 200, "OK", "")
	res := caller.waitResponse(200)
	if res.CSeq().MethodName != sip.INFO {
		t.Fatalf("answer to INFO: %s", res.CSeq().Value())
	}
	want, _ := ok.To().Params.Get("tag")
	if tag, _ := res.To().Params.Get("tag"); tag != want {
		t.Fatalf("answer to INFO carries To tag %q, not the caller's dialog's %q", tag, want)
	}
	// In-dialog OPTIONS (a keep-alive some phones send) crosses the same way.
	caller.send(caller.inDialog("OPTIONS", inv, ok, 3))
	opt := callee.waitRequest(sip.OPTIONS)
	if opt.CallID().Value() != b.CallID().Value() {
		t.Fatalf("OPTIONS in another dialog: %s", opt.CallID().Value())
	}
	callee.respond(opt, 200, "OK", "")
	if res := caller.waitResponse(200); res.CSeq().MethodName != sip.OPTIONS {
		t.Fatalf("answer to OPTIONS: %s", res.CSeq().Value())
	}
	hangUp(t, tp, caller, callee, inv, ok, 4)
}

// TestShutdownHangsUpCalls: an answered call is hung up on both sides when the PBX shuts down,
// and its record says the PBX ended it.
func TestShutdownHangsUpCalls(t *testing.T) {
	tp, caller, callees := callPBX(t, pbx.Config{}, 1)
	inv, _, _ := answeredCall(t, tp, caller, callees[0])
	done := make(chan error, 1)
	go func() { done <- tp.Shutdown(context.Background()) }()
	callees[0].respond(callees[0].waitRequest(sip.BYE), 200, "OK", "")
	caller.respond(caller.waitRequest(sip.BYE), 200, "OK", "")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if cdr := lastCDR(t, tp, inv.CallID().Value()); cdr.HangupBy != "pbx" || cdr.Disposition != store.Answered {
		t.Fatalf("CDR %+v", cdr)
	}
	if tp.ActiveCalls() != 0 || tp.ActiveDialogs() != 0 {
		t.Fatalf("after shutdown: %d calls, %d dialogs", tp.ActiveCalls(), tp.ActiveDialogs())
	}
}

// TestCallCopiesOnlyChosenHeaders: a header named in CopyHeaders reaches the callee; others of the
// caller's (User-Agent, Subject, X- headers) do not.
func TestCallCopiesOnlyChosenHeaders(t *testing.T) {
	tp, caller, callees := callPBX(t, pbx.Config{CopyHeaders: []string{"P-Asserted-Identity"}}, 1)
	msg := caller.build(reqSpec{method: "INVITE", from: "100", to: "200", headers: []string{
		"Contact: <sip:100@" + caller.addr() + ">", "Content-Type: application/sdp",
		"P-Asserted-Identity: <sip:+15551234@pbx.test>", "User-Agent: secret-phone/1.0", "X-Internal: do-not-leak",
		"Subject: private"}, body: sdpBody})
	caller.send(msg)
	b := callees[0].waitRequest(sip.INVITE)
	if got := header2(b, "P-Asserted-Identity"); got != "<sip:+15551234@pbx.test>" {
		t.Fatalf("P-Asserted-Identity %q", got)
	}
	for _, h := range []string{"User-Agent", "X-Internal", "Subject"} {
		if b.GetHeader(h) != nil {
			t.Errorf("%s crossed to the callee", h)
		}
	}
	callees[0].respond(b, 486, "Busy Here", "")
	caller.waitResponse(486)
	waitIdle(t, tp)
}

func header2(r *sip.Request, name string) string {
	if h := r.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

// respondWith answers req like respond, with extra header lines.
func (c *uaClient) respondWith(req *sip.Request, code int, reason, body string, extra ...string) {
	c.t.Helper()
	res := sip.NewResponseFromRequest(req, code, reason, []byte(body))
	res.To().Params.Add("tag", "callee-tag")
	res.AppendHeader(sip.NewHeader("Contact", "<sip:callee@"+c.addr()+">"))
	for _, l := range extra {
		name, value, _ := strings.Cut(l, ":")
		res.AppendHeader(sip.NewHeader(name, strings.TrimSpace(value)))
	}
	if body != "" {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	c.send(res.String())
}

// sessionCall sets up a call with a 3 s session timer negotiated between the two ends.
func sessionCall(t *testing.T) (*testPBX, *uaClient, *uaClient, *sip.Request, *sip.Response, *sip.Request) {
	tp, caller, callees := callPBX(t, pbx.Config{}, 1)
	callee := callees[0]
	msg := caller.build(reqSpec{method: "INVITE", from: "100", to: "200", headers: []string{
		"Contact: <sip:100@" + caller.addr() + ">", "Content-Type: application/sdp",
		"Supported: timer", "Session-Expires: 3;refresher=uac", "Min-SE: 1"}, body: sdpBody})
	m, _ := sip.ParseMessage([]byte(msg))
	inv := m.(*sip.Request)
	caller.send(msg)
	b := callee.waitRequest(sip.INVITE)
	if header2(b, "Session-Expires") != "3;refresher=uac" || header2(b, "Min-SE") != "1" || !strings.Contains(header2(b, "Supported"), "timer") {
		t.Fatalf("session timer headers at the callee: SE %q Min-SE %q Supported %q", header2(b, "Session-Expires"), header2(b, "Min-SE"), header2(b, "Supported"))
	}
	callee.respondWith(b, 200, "OK", calleeSDP, "Session-Expires: 3;refresher=uac", "Require: timer")
	ok := caller.waitResponse(200)
	if ok.GetHeader("Session-Expires") == nil || !strings.Contains(ok.GetHeader("Require").Value(), "timer") {
		t.Fatalf("the caller's 200 lacks the negotiated timer:\n%s", ok)
	}
	callee.waitRequest(sip.ACK)
	caller.send(caller.inDialog("ACK", inv, ok, 1))
	return tp, caller, callee, inv, ok, b
}

// TestCallSessionTimerExpires: nobody refreshes a 3 s session, so the PBX hangs both sides up
// (at 2 s: RFC 4028 §10) and records why.
func TestCallSessionTimerExpires(t *testing.T) {
	tp, caller, callee, inv, _, _ := sessionCall(t)
	start := time.Now()
	callee.respond(callee.waitRequest(sip.BYE), 200, "OK", "")
	caller.respond(caller.waitRequest(sip.BYE), 200, "OK", "")
	if took := time.Since(start); took < time.Second {
		t.Fatalf("hung up after %v, before the session could expire", took)
	}
	waitIdle(t, tp)
	if cdr := lastCDR(t, tp, inv.CallID().Value()); cdr.HangupBy != "pbx" || !strings.Contains(cdr.Reason, "session timer") {
		t.Fatalf("CDR %+v", cdr)
	}
}

// TestCallSessionTimerRefreshed: an UPDATE refresh passes through and keeps the call up past the
// first deadline.
func TestCallSessionTimerRefreshed(t *testing.T) {
	tp, caller, callee, inv, ok, _ := sessionCall(t)
	time.Sleep(time.Second)
	upd := strings.Replace(caller.inDialog("UPDATE", inv, ok, 2), "Content-Length: 0\r\n\r\n",
		"Session-Expires: 3;refresher=uac\r\nContent-Length: 0\r\n\r\n", 1)
	caller.send(upd)
	u := callee.waitRequest(sip.UPDATE)
	if header2(u, "Session-Expires") != "3;refresher=uac" {
		t.Fatalf("refresh without Session-Expires: %q", header2(u, "Session-Expires"))
	}
	callee.respondWith(u, 200, "OK", "", "Session-Expires: 3;refresher=uac", "Require: timer")
	caller.waitResponse(200)
	// The first deadline (2 s after the answer) passes without a BYE.
	if m := callee.recvMsg(1500 * time.Millisecond); m != nil {
		if r, isReq := m.(*sip.Request); isReq && r.Method == sip.BYE {
			t.Fatal("hung up although the session was refreshed")
		}
	}
	hangUp(t, tp, caller, callee, inv, ok, 3)
}

// TestStray2xxAckedAndHungUp: a 200 to one of the PBX's INVITEs that arrives when no transaction
// or call knows it any more is ACKed and hung up, towards the address it came from. A 200 without
// the PBX's branch prefix is left alone.
func TestStray2xxAckedAndHungUp(t *testing.T) {
	tp, _, callees := callPBX(t, pbx.Config{}, 1)
	phone := callees[0]
	stray := func(branch string) string {
		return "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP " + tp.addr.String() + ";branch=" + branch + "\r\n" +
			"From: <sip:100@127.0.0.1>;tag=pbx-side\r\nTo: <sip:200@127.0.0.1>;tag=phone-side\r\n" +
			"Call-ID: stray-1@pbxkit\r\nCSeq: 1 INVITE\r\nContact: <sip:200@192.0.2.99:5060>\r\n" +
			"Content-Length: 0\r\n\r\n"
	}
	phone.send(stray("z9hG4bK-not-ours"))
	if m := phone.recvMsg(500 * time.Millisecond); m != nil {
		t.Fatalf("answered a 200 that is not the PBX's: %s", m)
	}
	phone.send(stray(tp.BranchPrefix() + "gone"))
	ack := phone.waitRequest(sip.ACK)
	bye := phone.waitRequest(sip.BYE)
	for _, r := range []*sip.Request{ack, bye} {
		if r.CallID().Value() != "stray-1@pbxkit" {
			t.Fatalf("%s for another call: %s", r.Method, r.CallID().Value())
		}
		if tag, _ := r.To().Params.Get("tag"); tag != "phone-side" {
			t.Fatalf("%s To tag %q", r.Method, tag)
		}
	}
	phone.respond(bye, 200, "OK", "")
	waitIdle(t, tp)
}

// TestCallFinalAnswersPassThrough: a callee's final refusal reaches the caller with the IANA
// phrase; a callee's challenge does not (403).
func TestCallFinalAnswersPassThrough(t *testing.T) {
	tp, caller, callees := callPBX(t, pbx.Config{}, 1)
	for _, tc := range []struct {
		code      int
		want      int
		reason    string
		condition string
	}{
		{600, 600, "Busy Everywhere", "busy"},
		{603, 603, "Decline", "declined"},
		{404, 404, "Not Found", "failed"},
		{480, 480, "Temporarily Unavailable", "no_answer"},
		{407, 403, "Forbidden", "failed"},
		{503, 500, "Server Internal Error", "failed"},
	} {
		msg, inv := invite(caller)
		caller.send(msg)
		b := callees[0].waitRequest(sip.INVITE)
		callees[0].respond(b, tc.code, "Whatever", "")
		res := caller.waitResponse(tc.want)
		if res.Reason != tc.reason {
			t.Fatalf("%d from the callee: caller got %d %q, want %d %q", tc.code, res.StatusCode, res.Reason, tc.want, tc.reason)
		}
		callees[0].waitRequest(sip.ACK)
		waitIdle(t, tp)
		if cdr := lastCDR(t, tp, inv.CallID().Value()); string(cdr.Disposition) != tc.condition || cdr.Status != tc.want {
			t.Fatalf("%d: CDR %+v", tc.code, cdr)
		}
	}
}

// TestCallSecondForkAnswersLate: both forks answer; the second 200 is ACKed and hung up, and the
// caller sees one call.
func TestCallSecondForkAnswersLate(t *testing.T) {
	tp, caller, callees := callPBX(t, pbx.Config{}, 2)
	msg, inv := invite(caller)
	caller.send(msg)
	b1 := callees[0].waitRequest(sip.INVITE)
	b2 := callees[1].waitRequest(sip.INVITE)
	callees[0].respond(b1, 200, "OK", calleeSDP)
	ok := caller.waitResponse(200)
	callees[0].waitRequest(sip.ACK)
	// The second phone answers without having seen the CANCEL (no 1xx was sent, so the PBX could
	// not send one yet).
	callees[1].respond(b2, 200, "OK", calleeSDP)
	callees[1].waitRequest(sip.ACK)
	bye := callees[1].waitRequest(sip.BYE)
	callees[1].respond(bye, 200, "OK", "")
	caller.send(caller.inDialog("ACK", inv, ok, 1))
	hangUp(t, tp, caller, callees[0], inv, ok, 2)
}

// TestCallPassRedirects: with PassRedirects the caller gets the callee's 302 with its Contact.
func TestCallPassRedirects(t *testing.T) {
	tp, caller, callees := callPBX(t, pbx.Config{PassRedirects: true}, 1)
	msg, _ := invite(caller)
	caller.send(msg)
	b := callees[0].waitRequest(sip.INVITE)
	res := sip.NewResponseFromRequest(b, 302, "Moved Temporarily", nil)
	res.To().Params.Add("tag", "r1")
	res.AppendHeader(sip.NewHeader("Contact", "<sip:alice@voicemail.example>"))
	callees[0].send(res.String())
	got := caller.waitResponse(302)
	if c := header(got, "Contact"); !strings.Contains(c, "sip:alice@voicemail.example") {
		t.Fatalf("302 Contact %q", c)
	}
	waitIdle(t, tp)
}

// TestCallBLegTimeout: the only contact never answers anything, not even 100, and the ring
// timeout is longer than the INVITE transaction's Timer B (64*T1 = 32 s): the caller gets 408.
// It takes 32 s.
func TestCallBLegTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 32 s (Timer B)")
	}
	tp, caller, callees := callPBX(t, pbx.Config{RingTimeout: 60 * time.Second}, 1)
	msg, inv := invite(caller)
	caller.send(msg)
	callees[0].waitRequest(sip.INVITE) // and then silence; the retransmissions are ignored too
	deadline := time.Now().Add(40 * time.Second)
	for {
		m := caller.recvMsg(time.Until(deadline))
		if m == nil {
			t.Fatal("no final answer within 40 s")
		}
		if res, ok := m.(*sip.Response); ok && res.StatusCode >= 200 {
			if res.StatusCode != 408 || res.Reason != "Request Timeout" {
				t.Fatalf("got %d %s, want 408 Request Timeout", res.StatusCode, res.Reason)
			}
			break
		}
	}
	waitIdle(t, tp)
	if cdr := lastCDR(t, tp, inv.CallID().Value()); cdr.Status != 408 || cdr.Disposition != store.NoAnswer {
		t.Fatalf("CDR %+v", cdr)
	}
}

// TestCallBlindTransfer: the callee transfers the caller to extension 300 with REFER. The PBX
// rings 300 with the caller's SDP, re-INVITEs the caller with 300's SDP, reports to the
// transferor with NOTIFY (100, then 200) and hangs it up; the caller and 300 then talk until the
// caller's BYE reaches 300.
func TestCallBlindTransfer(t *testing.T) {
	tp, caller, callees := callPBX(t, pbx.Config{}, 1)
	callee := callees[0]
	tp.addExt(t, "300", "pw300")
	third := newClient(t, tp.addr)
	if err := tp.store.PutBinding(context.Background(), store.Binding{Extension: "300", Contact: "sip:300@" + third.addr(),
		Source: third.addr(), Transport: "udp", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	sub := tp.Subscribe(16)
	inv, ok, bInv := answeredCall(t, tp, caller, callee)

	refer := "REFER sip:200@" + tp.addr.String() + " SIP/2.0\r\nVia: SIP/2.0/UDP " + callee.addr() + ";branch=z9hG4bK-refer;rport\r\n" +
		"Max-Forwards: 70\r\nFrom: " + bInv.To().Value() + ";tag=callee-tag\r\nTo: " + bInv.From().Value() + "\r\n" +
		"Call-ID: " + bInv.CallID().Value() + "\r\nCSeq: 5 REFER\r\nContact: <sip:callee@" + callee.addr() + ">\r\n" +
		"Refer-To: <sip:300@pbx.test>\r\nContent-Length: 0\r\n\r\n"
	callee.send(refer)
	if res := callee.waitResponse(202); res.Reason != "Accepted" {
		t.Fatalf("REFER answered %d %s", res.StatusCode, res.Reason)
	}
	trying := callee.waitRequest(sip.NOTIFY)
	if !strings.Contains(string(trying.Body()), "SIP/2.0 100 Trying") || header2(trying, "Event") != "refer" {
		t.Fatalf("first NOTIFY: Event %q body %q", header2(trying, "Event"), trying.Body())
	}
	callee.respond(trying, 200, "OK", "")

	b3 := third.waitRequest(sip.INVITE)
	if b3.From().Address.User != "100" || string(b3.Body()) != sdpBody {
		t.Fatalf("INVITE to 300 from %q with %q", b3.From().Address.User, b3.Body())
	}
	thirdSDP := strings.Replace(calleeSDP, "m=audio 5000", "m=audio 7000", 1)
	third.respond(b3, 200, "OK", thirdSDP)
	third.waitRequest(sip.ACK)

	re := caller.waitRequest(sip.INVITE)
	if re.CallID().Value() != inv.CallID().Value() || string(re.Body()) != thirdSDP {
		t.Fatalf("re-INVITE to the caller in %s with %q", re.CallID().Value(), re.Body())
	}
	caller.respond(re, 200, "OK", sdpBody)
	caller.waitRequest(sip.ACK)

	done := callee.waitRequest(sip.NOTIFY)
	if !strings.Contains(string(done.Body()), "SIP/2.0 200 OK") || !strings.HasPrefix(header2(done, "Subscription-State"), "terminated") {
		t.Fatalf("final NOTIFY: %q %q", header2(done, "Subscription-State"), done.Body())
	}
	callee.respond(done, 200, "OK", "")
	callee.respond(callee.waitRequest(sip.BYE), 200, "OK", "")

	caller.send(caller.inDialog("BYE", inv, ok, 2))
	caller.waitResponse(200)
	bye3 := third.waitRequest(sip.BYE)
	if bye3.CallID().Value() != b3.CallID().Value() {
		t.Fatalf("BYE to 300 in another dialog: %s", bye3.CallID().Value())
	}
	third.respond(bye3, 200, "OK", "")
	waitIdle(t, tp)
	var kinds []string
	for len(sub.C) > 0 {
		kinds = append(kinds, (<-sub.C).Kind)
	}
	if !slices.Contains(kinds, "call.transferred") {
		t.Fatalf("events %v lack call.transferred", kinds)
	}
}

// TestCallTransferToUnknownTarget: the transfer target does not exist; the transferor hears
// 404 in the final NOTIFY and the original call goes on.
func TestCallTransferToUnknownTarget(t *testing.T) {
	tp, caller, callees := callPBX(t, pbx.Config{}, 1)
	callee := callees[0]
	inv, ok, bInv := answeredCall(t, tp, caller, callee)
	callee.send("REFER sip:200@" + tp.addr.String() + " SIP/2.0\r\nVia: SIP/2.0/UDP " + callee.addr() + ";branch=z9hG4bK-refer2;rport\r\n" +
		"Max-Forwards: 70\r\nFrom: " + bInv.To().Value() + ";tag=callee-tag\r\nTo: " + bInv.From().Value() + "\r\n" +
		"Call-ID: " + bInv.CallID().Value() + "\r\nCSeq: 5 REFER\r\nContact: <sip:callee@" + callee.addr() + ">\r\n" +
		"Refer-To: <sip:999@pbx.test>\r\nContent-Length: 0\r\n\r\n")
	callee.waitResponse(202)
	callee.respond(callee.waitRequest(sip.NOTIFY), 200, "OK", "")
	final := callee.waitRequest(sip.NOTIFY)
	if !strings.Contains(string(final.Body()), "SIP/2.0 404 Not Found") {
		t.Fatalf("final NOTIFY body %q", final.Body())
	}
	callee.respond(final, 200, "OK", "")
	// Still connected: the caller's BYE reaches the callee.
	hangUp(t, tp, caller, callee, inv, ok, 2)
}

// TestShutdownWhileRingingRacesAnswer: the PBX shuts down while a call rings, and the callee's
// 200 crosses the CANCEL. Whichever the PBX sees first, both sides end: the callee's 200 is
// ACKed and BYEd, the caller gets 503, or 200 and then BYE.
func TestShutdownWhileRingingRacesAnswer(t *testing.T) {
	tp, caller, callees := callPBX(t, pbx.Config{}, 1)
	callee := callees[0]
	msg, _ := invite(caller)
	caller.send(msg)
	b := callee.waitRequest(sip.INVITE)
	callee.respond(b, 180, "Ringing", "")
	caller.waitResponse(180)
	done := make(chan error, 1)
	go func() { done <- tp.Shutdown(context.Background()) }()
	cancel := callee.waitRequest(sip.CANCEL)
	callee.respond(b, 200, "OK", calleeSDP) // crosses the CANCEL
	callee.respond(cancel, 200, "OK", "")
	callee.waitRequest(sip.ACK)
	callee.respond(callee.waitRequest(sip.BYE), 200, "OK", "")
	for final := false; !final; {
		switch m := caller.recvMsg(5 * time.Second).(type) {
		case *sip.Response:
			switch m.StatusCode {
			case 503:
				final = true
			case 200:
				caller.respond(caller.waitRequest(sip.BYE), 200, "OK", "")
				final = true
			}
		case *sip.Request:
			t.Fatalf("unexpected %s to the caller", m.Method)
		case nil:
			t.Fatal("the caller got no final answer")
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if tp.ActiveCalls() != 0 || tp.ActiveDialogs() != 0 {
		t.Fatalf("after shutdown: %d calls, %d dialogs", tp.ActiveCalls(), tp.ActiveDialogs())
	}
}

// TestCallLeavesFromTheListeningSocket: the INVITE to a phone the PBX has never received a packet
// from (its binding came from the database, as after a restart) still leaves from the PBX's
// listening socket, the address the phone's NAT lets through.
func TestCallLeavesFromTheListeningSocket(t *testing.T) {
	tp, caller, callees := callPBX(t, pbx.Config{}, 1)
	msg, _ := invite(caller)
	caller.send(msg)
	b, from := callees[0].waitRequestFrom(sip.INVITE)
	if from.Port != tp.addr.Port {
		t.Fatalf("INVITE came from %s, not the PBX's listener %s", from, tp.addr)
	}
	callees[0].respond(b, 486, "Busy Here", "")
	caller.waitResponse(486)
	waitIdle(t, tp)
}
