package b2bua_test

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
)

// callServer is a server with extension 200 registered at each of the callee phones returned,
// and a caller phone; calls go to the extension dialled.
func callServer(t *testing.T, cfg b2bua.Config, callees int) (*b2buatest.Server, *b2buatest.Phone, []*b2buatest.Phone) {
	t.Helper()
	s := b2buatest.NewServer(t, cfg, nil)
	var cs []*b2buatest.Phone
	for range callees {
		p := s.Phone(t)
		s.Register("200", p)
		cs = append(cs, p)
	}
	return s, s.Phone(t), cs
}

// invite is the caller 100's INVITE to 200 with an SDP offer.
func invite(c *b2buatest.Phone) (string, *sip.Request) { return c.Invite("100", "200", nil) }

// answeredCall sets up a call to 200 and returns what both ends saw.
func answeredCall(t *testing.T, _ *b2buatest.Server, caller, callee *b2buatest.Phone) (inv *sip.Request, ok *sip.Response, bInv *sip.Request) {
	t.Helper()
	return b2buatest.AnsweredCall(t, caller, callee)
}

// hangUp ends an answered call with the caller's BYE (CSeq cseq): the server answers it and BYEs
// the callee, and the call leaves no call or dialog behind.
func hangUp(t *testing.T, s *b2buatest.Server, caller, callee *b2buatest.Phone, inv *sip.Request, ok *sip.Response, cseq int) {
	t.Helper()
	b2buatest.HangUp(t, caller, callee, inv, ok, cseq)
	s.WaitIdle()
}

func header(m interface{ GetHeader(string) sip.Header }, name string) string {
	if h := m.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

func TestCallTopologyHidingAndByeFromCaller(t *testing.T) {
	s, caller, callees := callServer(t, b2bua.Config{}, 1)
	callee := callees[0]
	inv, ok, bInv := answeredCall(t, s, caller, callee)

	// The callee sees a dialog of the PBX's, not the caller's.
	if bInv.CallID().Value() == inv.CallID().Value() {
		t.Error("B-leg reuses the caller's Call-ID")
	}
	ft, _ := bInv.From().Params.Get("tag")
	ct, _ := inv.From().Params.Get("tag")
	if ft == ct {
		t.Error("B-leg reuses the caller's From tag")
	}
	if b, _ := bInv.Via().Params.Get("branch"); !strings.HasPrefix(b, b2buatest.BranchPrefix) || len(bInv.GetHeaders("Via")) != 1 {
		t.Errorf("B-leg Via %q: want one Via with the PBX's branch prefix", bInv.GetHeaders("Via"))
	}
	if target := b2buatest.RemoteTarget(bInv); strings.Contains(target, caller.Addr()) || strings.Contains(bInv.String(), caller.Addr()) {
		t.Errorf("the caller's address reached the callee:\n%s", bInv)
	}
	if !b2buatest.SameSession(bInv.Body(), b2buatest.SDP) {
		t.Errorf("SDP not passed through: %q", bInv.Body())
	}
	if bInv.Recipient.User != "200" {
		t.Errorf("B-leg Request-URI %s", bInv.Recipient.String())
	}
	// ... and the caller one of the PBX's, with the callee's SDP.
	if target := b2buatest.RemoteTarget(ok); strings.Contains(target, callee.Addr()) || strings.Contains(ok.String(), callee.Addr()) {
		t.Errorf("the callee's address reached the caller:\n%s", ok)
	}
	if !b2buatest.SameSession(ok.Body(), b2buatest.CalleeSDP) {
		t.Errorf("answer SDP %q", ok.Body())
	}
	if s.Engine.Active() != 1 || s.Engine.Dialogs() != 2 {
		t.Fatalf("during the call: %d calls, %d dialogs", s.Engine.Active(), s.Engine.Dialogs())
	}

	caller.Send(caller.InDialog("BYE", inv, ok, 2))
	caller.WaitResponse(200)
	bye := callee.WaitRequest(sip.BYE)
	if bye.CallID().Value() != bInv.CallID().Value() {
		t.Errorf("BYE in another dialog: %s", bye.CallID().Value())
	}
	callee.Respond(bye, 200, "OK", "")
	s.WaitIdle()
	rec := s.Record(inv.CallID().Value())
	if rec.Disposition() != "answered" || rec.HangupBy != "caller" || rec.Status != 200 || rec.Answer.IsZero() || rec.Callee != "200" || rec.Caller != "100" {
		t.Fatalf("CDR %+v", rec)
	}
}

func TestCallByeFromCallee(t *testing.T) {
	s, caller, callees := callServer(t, b2bua.Config{}, 1)
	inv, _, bInv := answeredCall(t, s, caller, callees[0])
	callee := callees[0]
	bye := "BYE sip:200@" + s.Addr().String() + " SIP/2.0\r\nVia: SIP/2.0/UDP " + callee.Addr() + ";branch=z9hG4bK-cbye;rport\r\n" +
		"Max-Forwards: 70\r\nFrom: " + bInv.To().Value() + ";tag=callee-tag\r\nTo: " + bInv.From().Value() + "\r\n" +
		"Call-ID: " + bInv.CallID().Value() + "\r\nCSeq: 7 BYE\r\nContent-Length: 0\r\n\r\n"
	callee.Send(bye)
	callee.WaitResponse(200)
	cb := caller.WaitRequest(sip.BYE)
	if cb.CallID().Value() != inv.CallID().Value() {
		t.Fatalf("BYE to the caller in dialog %s", cb.CallID().Value())
	}
	caller.Respond(cb, 200, "OK", "")
	s.WaitIdle()
	if rec := s.Record(inv.CallID().Value()); rec.HangupBy != "callee" || rec.Disposition() != "answered" {
		t.Fatalf("CDR %+v", rec)
	}
}

func TestCallBusyPassesThrough(t *testing.T) {
	s, caller, callees := callServer(t, b2bua.Config{}, 1)
	msg, inv := invite(caller)
	caller.Send(msg)
	b := callees[0].WaitRequest(sip.INVITE)
	callees[0].Respond(b, 486, "Busy Here", "")
	res := caller.WaitResponse(486)
	if res.Reason != "Busy Here" {
		t.Fatalf("reason %q", res.Reason)
	}
	callees[0].WaitRequest(sip.ACK) // the PBX's transaction acknowledges the 486
	s.WaitIdle()
	if rec := s.Record(inv.CallID().Value()); rec.Disposition() != "busy" || rec.Status != 486 {
		t.Fatalf("CDR %+v", rec)
	}
}

func TestCallCancelWhileRinging(t *testing.T) {
	s, caller, callees := callServer(t, b2bua.Config{}, 1)
	msg, inv := invite(caller)
	caller.Send(msg)
	b := callees[0].WaitRequest(sip.INVITE)
	callees[0].Respond(b, 180, "Ringing", "")
	caller.WaitResponse(180)
	cancel := b2buatest.Cancel(inv)
	caller.Send(cancel)
	r487 := caller.WaitResponse(487)
	caller.AckFinal(inv, r487)
	callees[0].AcceptCancel(b)
	s.WaitIdle()
	if rec := s.Record(inv.CallID().Value()); rec.Disposition() != "cancelled" || rec.HangupBy != "caller" {
		t.Fatalf("CDR %+v", rec)
	}
}

func TestCallRingTimeout(t *testing.T) {
	s, caller, callees := callServer(t, b2bua.Config{RingTimeout: 300 * time.Millisecond}, 1)
	msg, inv := invite(caller)
	caller.Send(msg)
	b := callees[0].WaitRequest(sip.INVITE)
	callees[0].Respond(b, 180, "Ringing", "")
	res := caller.WaitResponse(480)
	if res.Reason != "Temporarily Unavailable" {
		t.Fatalf("reason %q", res.Reason)
	}
	callees[0].AcceptCancel(b)
	s.WaitIdle()
	if rec := s.Record(inv.CallID().Value()); rec.Disposition() != "no_answer" || rec.Status != 480 {
		t.Fatalf("CDR %+v", rec)
	}
}

func TestCallForksToEveryContact(t *testing.T) {
	s, caller, callees := callServer(t, b2bua.Config{}, 2)
	msg, inv := invite(caller)
	caller.Send(msg)
	b1 := callees[0].WaitRequest(sip.INVITE)
	b2 := callees[1].WaitRequest(sip.INVITE)
	if b1.CallID().Value() == b2.CallID().Value() {
		t.Error("forks share a Call-ID")
	}
	callees[1].Respond(b2, 180, "Ringing", "")
	callees[0].Respond(b1, 180, "Ringing", "")
	callees[1].Respond(b2, 200, "OK", b2buatest.CalleeSDP)
	ok := caller.WaitResponse(200)
	callees[1].WaitRequest(sip.ACK)
	callees[0].AcceptCancel(b1) // the losing fork is cancelled
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	hangUp(t, s, caller, callees[1], inv, ok, 2)
}

// TestCallWithoutAck: the caller never ACKs the 200. The PBX retransmits it (T1, then doubling),
// and when AckTimeout passes it hangs up both sides.
func TestCallWithoutAck(t *testing.T) {
	s, caller, callees := callServer(t, b2bua.Config{AckTimeout: 1500 * time.Millisecond}, 1)
	msg, inv := invite(caller)
	caller.Send(msg)
	b := callees[0].WaitRequest(sip.INVITE)
	callees[0].Respond(b, 200, "OK", b2buatest.CalleeSDP)
	callees[0].WaitRequest(sip.ACK)
	first := caller.WaitResponse(200)
	again := caller.WaitResponse(200) // retransmitted after T1 (500 ms)
	if again.CallID().Value() != first.CallID().Value() {
		t.Fatal("retransmission of another response")
	}
	bye := callees[0].WaitRequest(sip.BYE)
	callees[0].Respond(bye, 200, "OK", "")
	cb := caller.WaitRequest(sip.BYE)
	caller.Respond(cb, 200, "OK", "")
	s.WaitIdle()
	if rec := s.Record(inv.CallID().Value()); rec.HangupBy != "pbx" || !strings.Contains(rec.Reason, "no ACK") {
		t.Fatalf("CDR %+v", rec)
	}
}

// reinviteFrom builds a re-INVITE in the caller's dialog with body.
func reinviteFrom(c *b2buatest.Phone, inv *sip.Request, ok *sip.Response, cseq int, body string) string {
	m := c.InDialog("INVITE", inv, ok, cseq)
	m = strings.Replace(m, "Content-Length: 0\r\n\r\n", "Contact: <sip:100@"+c.Addr()+">\r\nContent-Type: application/sdp\r\n"+
		"Content-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body, 1)
	return m
}

// TestCallHoldAndResume: re-INVITEs from the caller (sendonly, then sendrecv) reach the callee in
// its own dialog and the answers come back.
func TestCallHoldAndResume(t *testing.T) {
	s, caller, callees := callServer(t, b2bua.Config{}, 1)
	callee := callees[0]
	inv, ok, bInv := answeredCall(t, s, caller, callee)
	for i, dir := range []string{"sendonly", "sendrecv"} {
		cseq := 2 + i
		caller.Send(reinviteFrom(caller, inv, ok, cseq, b2buatest.SDP+"a="+dir+"\r\n"))
		re := callee.WaitRequest(sip.INVITE)
		if re.CallID().Value() != bInv.CallID().Value() || !strings.Contains(string(re.Body()), "a="+dir) {
			t.Fatalf("re-INVITE %d at the callee: call %s, body %q", i, re.CallID().Value(), re.Body())
		}
		if tag, _ := re.To().Params.Get("tag"); tag != "callee-tag" {
			t.Fatalf("re-INVITE outside the dialog: To tag %q", tag)
		}
		answer := strings.Replace(b2buatest.CalleeSDP, "t=0 0\r\n", "t=0 0\r\na=recvonly\r\n", 1)
		callee.Respond(re, 200, "OK", answer)
		callee.WaitRequest(sip.ACK)
		res := caller.WaitResponse(200)
		if res.CSeq().SeqNo != uint32(cseq) || !strings.Contains(string(res.Body()), "a=recvonly") {
			t.Fatalf("answer to re-INVITE %d: CSeq %d body %q", i, res.CSeq().SeqNo, res.Body())
		}
		caller.Send(caller.InDialog("ACK", inv, ok, cseq))
	}
	hangUp(t, s, caller, callee, inv, ok, 10)
}

// TestCallReInviteGlare: while the caller's re-INVITE waits for the callee, the callee's own
// re-INVITE gets 491 Request Pending.
func TestCallReInviteGlare(t *testing.T) {
	s, caller, callees := callServer(t, b2bua.Config{}, 1)
	callee := callees[0]
	inv, ok, bInv := answeredCall(t, s, caller, callee)
	caller.Send(reinviteFrom(caller, inv, ok, 2, b2buatest.SDP+"a=sendonly\r\n"))
	re := callee.WaitRequest(sip.INVITE)
	// The callee's re-INVITE crosses it.
	cross := "INVITE sip:200@" + s.Addr().String() + " SIP/2.0\r\nVia: SIP/2.0/UDP " + callee.Addr() + ";branch=z9hG4bK-glare;rport\r\n" +
		"Max-Forwards: 70\r\nFrom: " + bInv.To().Value() + ";tag=callee-tag\r\nTo: " + bInv.From().Value() + "\r\n" +
		"Call-ID: " + bInv.CallID().Value() + "\r\nCSeq: 9 INVITE\r\nContact: <sip:callee@" + callee.Addr() + ">\r\n" +
		"Content-Type: application/sdp\r\nContent-Length: " + strconv.Itoa(len(b2buatest.CalleeSDP)) + "\r\n\r\n" + b2buatest.CalleeSDP
	callee.Send(cross)
	if res := callee.WaitResponse(491); res.Reason != "Request Pending" {
		t.Fatalf("glare answered %d %s", res.StatusCode, res.Reason)
	}
	callee.Respond(re, 200, "OK", b2buatest.CalleeSDP)
	caller.WaitResponse(200)
	caller.Send(caller.InDialog("ACK", inv, ok, 2))
	hangUp(t, s, caller, callee, inv, ok, 3)
}

// TestCallViaNamesThePBX: requests the PBX sends carry its own address in the Via, with rport, so
// a phone that answers by the Via (not the source address) reaches the PBX.
func TestCallViaNamesThePBX(t *testing.T) {
	s, caller, callees := callServer(t, b2bua.Config{}, 1)
	inv, ok, bInv := answeredCall(t, s, caller, callees[0])
	via := bInv.Via()
	if via.Host != "127.0.0.1" || via.Port != s.Addr().Port {
		t.Fatalf("Via sent-by %s:%d, want the PBX at %s", via.Host, via.Port, s.Addr())
	}
	if _, ok := via.Params.Get("rport"); !ok {
		t.Fatal("Via without rport")
	}
	caller.Send(caller.InDialog("BYE", inv, ok, 2))
	caller.WaitResponse(200)
	bye := callees[0].WaitRequest(sip.BYE)
	if v := bye.Via(); v.Host != "127.0.0.1" || v.Port != s.Addr().Port {
		t.Fatalf("BYE Via sent-by %s:%d", v.Host, v.Port)
	}
	callees[0].Respond(bye, 200, "OK", "")
	s.WaitIdle()
}

// TestCallCancelRacingAnswer: the caller CANCELs while the callee answers. The PBX has already
// cancelled its B-leg when the callee's 200 arrives, so it ACKs that 200 and hangs the callee up:
// nothing stays up on either side.
func TestCallCancelRacingAnswer(t *testing.T) {
	s, caller, callees := callServer(t, b2bua.Config{}, 1)
	callee := callees[0]
	msg, inv := invite(caller)
	caller.Send(msg)
	b := callee.WaitRequest(sip.INVITE)
	callee.Respond(b, 180, "Ringing", "")
	caller.WaitResponse(180)
	caller.Send(b2buatest.Cancel(inv))
	caller.WaitResponse(487)
	callee.WaitRequest(sip.CANCEL) // the callee answers the INVITE instead, as if the two crossed
	callee.Respond(b, 200, "OK", b2buatest.CalleeSDP)
	ack := callee.WaitRequest(sip.ACK)
	bye := callee.WaitRequest(sip.BYE)
	if ack.CallID().Value() != b.CallID().Value() || bye.CallID().Value() != b.CallID().Value() {
		t.Fatal("ACK/BYE outside the callee's dialog")
	}
	if tag, _ := bye.To().Params.Get("tag"); tag != "callee-tag" {
		t.Fatalf("BYE To tag %q", tag)
	}
	callee.Respond(bye, 200, "OK", "")
	s.WaitIdle()
	if rec := s.Record(inv.CallID().Value()); rec.Disposition() != "cancelled" {
		t.Fatalf("CDR %+v", rec)
	}
}

// TestCallFollowsRedirect: a callee answering 302 sends the call on to its Contact; a redirect
// back to a contact already tried is not followed (no loop), and the caller never sees the
// callee's Contacts.
func TestCallFollowsRedirect(t *testing.T) {
	s, caller, callees := callServer(t, b2bua.Config{}, 1)
	first := callees[0]
	second := s.Phone(t)
	msg, inv := invite(caller)
	caller.Send(msg)
	b1 := first.WaitRequest(sip.INVITE)
	res := sip.NewResponseFromRequest(b1, 302, "Moved Temporarily", nil)
	res.To().Params.Add("tag", "r1")
	res.AppendHeader(sip.NewHeader("Contact", "<sip:200@"+second.Addr()+">"))
	first.Send(res.String())
	first.WaitRequest(sip.ACK) // the PBX's transaction acknowledges the 302
	b2 := second.WaitRequest(sip.INVITE)
	if b2.Recipient.Host+":"+strconv.Itoa(b2.Recipient.Port) != second.Addr() || !b2buatest.SameSession(b2.Body(), b2buatest.SDP) {
		t.Fatalf("redirected INVITE %s body %q", b2.Recipient.String(), b2.Body())
	}
	// The second contact redirects back to the first: already tried, so the call fails (480).
	back := sip.NewResponseFromRequest(b2, 302, "Moved Temporarily", nil)
	back.To().Params.Add("tag", "r2")
	back.AppendHeader(sip.NewHeader("Contact", "<sip:200@"+first.Addr()+">"))
	second.Send(back.String())
	final := caller.WaitResponse(480)
	if final.GetHeader("Contact") != nil && strings.Contains(final.String(), second.Addr()) {
		t.Fatalf("the callee's contact leaked to the caller:\n%s", final)
	}
	s.WaitIdle()
	if rec := s.Record(inv.CallID().Value()); rec.Status != 480 {
		t.Fatalf("CDR %+v", rec)
	}
}

func TestCallRedirectAnswered(t *testing.T) {
	s, caller, callees := callServer(t, b2bua.Config{}, 1)
	second := s.Phone(t)
	msg, inv := invite(caller)
	caller.Send(msg)
	b1 := callees[0].WaitRequest(sip.INVITE)
	res := sip.NewResponseFromRequest(b1, 301, "Moved Permanently", nil)
	res.To().Params.Add("tag", "r1")
	res.AppendHeader(sip.NewHeader("Contact", "<sip:200@"+second.Addr()+">"))
	callees[0].Send(res.String())
	b2 := second.WaitRequest(sip.INVITE)
	second.Respond(b2, 200, "OK", b2buatest.CalleeSDP)
	ok := caller.WaitResponse(200)
	second.WaitRequest(sip.ACK)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	hangUp(t, s, caller, second, inv, ok, 2)
}

// TestCallUnreachableContact: the only contact is registered over TCP on a port where nothing
// listens. The caller gets 503: the PBX could not reach the phone, and OnUnreachable hears of
// the contact (the PBX drops such a registration).
func TestCallUnreachableContact(t *testing.T) {
	gone := make(chan b2bua.Target, 1)
	s, caller, _ := callServer(t, b2bua.Config{OnUnreachable: func(t b2bua.Target, _ error) { gone <- t }}, 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().(*net.TCPAddr)
	ln.Close()
	s.RegisterTarget(b2bua.Target{URI: sip.Uri{Scheme: "sip", User: "200", Host: "127.0.0.1", Port: dead.Port},
		Dest: dead.String(), Transport: "tcp", Ext: "200"})
	msg, inv := invite(caller)
	caller.Send(msg)
	if res := caller.WaitResponse(503); res.Reason != "Service Unavailable" {
		t.Fatalf("reason %q", res.Reason)
	}
	s.WaitIdle()
	if rec := s.Record(inv.CallID().Value()); rec.Disposition() != "failed" || rec.HangupBy != "pbx" {
		t.Fatalf("CDR %+v", rec)
	}
	select {
	case tg := <-gone:
		if tg.Dest != dead.String() || tg.Ext != "200" {
			t.Fatalf("OnUnreachable told of %+v", tg)
		}
	case <-time.After(time.Second):
		t.Fatal("OnUnreachable not told of the dead contact")
	}
}

// TestCallEarlyMediaAndInfo: a 183 reaches the caller with the callee's early-media SDP, and an
// INFO (DTMF) and an OPTIONS in the call reach the callee in its own dialog, their answers coming
// back.
func TestCallEarlyMediaAndInfo(t *testing.T) {
	s, caller, callees := callServer(t, b2bua.Config{}, 1)
	callee := callees[0]
	msg, inv := invite(caller)
	caller.Send(msg)
	b := callee.WaitRequest(sip.INVITE)
	callee.Respond(b, 183, "Session Progress", b2buatest.CalleeSDP)
	early := caller.WaitResponse(183)
	if !b2buatest.SameSession(early.Body(), b2buatest.CalleeSDP) {
		t.Fatalf("183 body %q", early.Body())
	}
	callee.Respond(b, 200, "OK", b2buatest.CalleeSDP)
	ok := caller.WaitResponse(200)
	callee.WaitRequest(sip.ACK)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	dtmf := "Signal=5\r\nDuration=160\r\n"
	info := strings.Replace(caller.InDialog("INFO", inv, ok, 2), "Content-Length: 0\r\n\r\n",
		"Content-Type: application/dtmf-relay\r\nContent-Length: "+strconv.Itoa(len(dtmf))+"\r\n\r\n"+dtmf, 1)
	caller.Send(info)
	got := callee.WaitRequest(sip.INFO)
	if got.CallID().Value() != b.CallID().Value() || string(got.Body()) != dtmf || got.ContentType().Value() != "application/dtmf-relay" {
		t.Fatalf("INFO at the callee: call %s, %s %q", got.CallID().Value(), got.ContentType().Value(), got.Body())
	}
	callee.Respond(got, 200, "OK", "")
	res := caller.WaitResponse(200)
	if res.CSeq().MethodName != sip.INFO {
		t.Fatalf("answer to INFO: %s", res.CSeq().Value())
	}
	want, _ := ok.To().Params.Get("tag")
	if tag, _ := res.To().Params.Get("tag"); tag != want {
		t.Fatalf("answer to INFO carries To tag %q, not the caller's dialog's %q", tag, want)
	}
	// In-dialog OPTIONS (a keep-alive some phones send) crosses the same way.
	caller.Send(caller.InDialog("OPTIONS", inv, ok, 3))
	opt := callee.WaitRequest(sip.OPTIONS)
	if opt.CallID().Value() != b.CallID().Value() {
		t.Fatalf("OPTIONS in another dialog: %s", opt.CallID().Value())
	}
	callee.Respond(opt, 200, "OK", "")
	if res := caller.WaitResponse(200); res.CSeq().MethodName != sip.OPTIONS {
		t.Fatalf("answer to OPTIONS: %s", res.CSeq().Value())
	}
	hangUp(t, s, caller, callee, inv, ok, 4)
}

// TestCallCopiesOnlyChosenHeaders: a header named in CopyHeaders reaches the callee; others of the
// caller's (User-Agent, Subject, X- headers) do not.
func TestCallCopiesOnlyChosenHeaders(t *testing.T) {
	s, caller, callees := callServer(t, b2bua.Config{CopyHeaders: []string{"P-Asserted-Identity"}}, 1)
	msg := caller.Build(b2buatest.Request{Method: "INVITE", From: "100", To: "200", Headers: []string{
		"Contact: <sip:100@" + caller.Addr() + ">", "Content-Type: application/sdp",
		"P-Asserted-Identity: <sip:+15551234@pbx.test>", "User-Agent: secret-phone/1.0", "X-Internal: do-not-leak",
		"Subject: private"}, Body: b2buatest.SDP})
	caller.Send(msg)
	b := callees[0].WaitRequest(sip.INVITE)
	if got := header(b, "P-Asserted-Identity"); got != "<sip:+15551234@pbx.test>" {
		t.Fatalf("P-Asserted-Identity %q", got)
	}
	for _, h := range []string{"User-Agent", "X-Internal", "Subject"} {
		if b.GetHeader(h) != nil {
			t.Errorf("%s crossed to the callee", h)
		}
	}
	callees[0].Respond(b, 486, "Busy Here", "")
	caller.WaitResponse(486)
	s.WaitIdle()
}

// sessionCall sets up a call with a 3 s session timer negotiated between the two ends.
func sessionCall(t *testing.T) (*b2buatest.Server, *b2buatest.Phone, *b2buatest.Phone, *sip.Request, *sip.Response, *sip.Request) {
	s, caller, callees := callServer(t, b2bua.Config{}, 1)
	callee := callees[0]
	msg := caller.Build(b2buatest.Request{Method: "INVITE", From: "100", To: "200", Headers: []string{
		"Contact: <sip:100@" + caller.Addr() + ">", "Content-Type: application/sdp",
		"Supported: timer", "Session-Expires: 3;refresher=uac", "Min-SE: 1"}, Body: b2buatest.SDP})
	m, _ := sip.ParseMessage([]byte(msg))
	inv := m.(*sip.Request)
	caller.Send(msg)
	b := callee.WaitRequest(sip.INVITE)
	if header(b, "Session-Expires") != "3;refresher=uac" || header(b, "Min-SE") != "1" || !strings.Contains(header(b, "Supported"), "timer") {
		t.Fatalf("session timer headers at the callee: SE %q Min-SE %q Supported %q", header(b, "Session-Expires"), header(b, "Min-SE"), header(b, "Supported"))
	}
	callee.RespondWith(b, 200, "OK", b2buatest.CalleeSDP, "Session-Expires: 3;refresher=uac", "Require: timer")
	ok := caller.WaitResponse(200)
	if ok.GetHeader("Session-Expires") == nil || !strings.Contains(ok.GetHeader("Require").Value(), "timer") {
		t.Fatalf("the caller's 200 lacks the negotiated timer:\n%s", ok)
	}
	callee.WaitRequest(sip.ACK)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	return s, caller, callee, inv, ok, b
}

// TestCallSessionTimerExpires: nobody refreshes a 3 s session, so the PBX hangs both sides up
// (at 2 s: RFC 4028 §10) and records why.
func TestCallSessionTimerExpires(t *testing.T) {
	s, caller, callee, inv, _, _ := sessionCall(t)
	start := time.Now()
	callee.Respond(callee.WaitRequest(sip.BYE), 200, "OK", "")
	caller.Respond(caller.WaitRequest(sip.BYE), 200, "OK", "")
	if took := time.Since(start); took < time.Second {
		t.Fatalf("hung up after %v, before the session could expire", took)
	}
	s.WaitIdle()
	if rec := s.Record(inv.CallID().Value()); rec.HangupBy != "pbx" || !strings.Contains(rec.Reason, "session timer") {
		t.Fatalf("CDR %+v", rec)
	}
}

// TestCallSessionTimerRefreshed: an UPDATE refresh passes through and keeps the call up past the
// first deadline.
func TestCallSessionTimerRefreshed(t *testing.T) {
	s, caller, callee, inv, ok, _ := sessionCall(t)
	time.Sleep(time.Second)
	upd := strings.Replace(caller.InDialog("UPDATE", inv, ok, 2), "Content-Length: 0\r\n\r\n",
		"Session-Expires: 3;refresher=uac\r\nContent-Length: 0\r\n\r\n", 1)
	caller.Send(upd)
	u := callee.WaitRequest(sip.UPDATE)
	if header(u, "Session-Expires") != "3;refresher=uac" {
		t.Fatalf("refresh without Session-Expires: %q", header(u, "Session-Expires"))
	}
	callee.RespondWith(u, 200, "OK", "", "Session-Expires: 3;refresher=uac", "Require: timer")
	caller.WaitResponse(200)
	// The first deadline (2 s after the answer) passes without a BYE.
	if m := callee.RecvMsg(1500 * time.Millisecond); m != nil {
		if r, isReq := m.(*sip.Request); isReq && r.Method == sip.BYE {
			t.Fatal("hung up although the session was refreshed")
		}
	}
	hangUp(t, s, caller, callee, inv, ok, 3)
}

// TestStray2xxAckedAndHungUp: a 200 to one of the PBX's INVITEs that arrives when no transaction
// or call knows it any more is ACKed and hung up, towards the address it came from. A 200 without
// the PBX's branch prefix is left alone.
func TestStray2xxAckedAndHungUp(t *testing.T) {
	s, _, callees := callServer(t, b2bua.Config{}, 1)
	phone := callees[0]
	stray := func(branch string) string {
		return "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP " + s.Addr().String() + ";branch=" + branch + "\r\n" +
			"From: <sip:100@127.0.0.1>;tag=pbx-side\r\nTo: <sip:200@127.0.0.1>;tag=phone-side\r\n" +
			"Call-ID: stray-1@pbxkit\r\nCSeq: 1 INVITE\r\nContact: <sip:200@192.0.2.99:5060>\r\n" +
			"Content-Length: 0\r\n\r\n"
	}
	phone.Send(stray("z9hG4bK-not-ours"))
	if m := phone.RecvMsg(500 * time.Millisecond); m != nil {
		t.Fatalf("answered a 200 that is not the PBX's: %s", m)
	}
	phone.Send(stray(b2buatest.BranchPrefix + "gone"))
	ack := phone.WaitRequest(sip.ACK)
	bye := phone.WaitRequest(sip.BYE)
	for _, r := range []*sip.Request{ack, bye} {
		if r.CallID().Value() != "stray-1@pbxkit" {
			t.Fatalf("%s for another call: %s", r.Method, r.CallID().Value())
		}
		if tag, _ := r.To().Params.Get("tag"); tag != "phone-side" {
			t.Fatalf("%s To tag %q", r.Method, tag)
		}
	}
	phone.Respond(bye, 200, "OK", "")
	s.WaitIdle()
}

// TestCallFinalAnswersPassThrough: a callee's final refusal reaches the caller with the IANA
// phrase; a callee's challenge does not (403).
func TestCallFinalAnswersPassThrough(t *testing.T) {
	s, caller, callees := callServer(t, b2bua.Config{}, 1)
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
		caller.Send(msg)
		b := callees[0].WaitRequest(sip.INVITE)
		callees[0].Respond(b, tc.code, "Whatever", "")
		res := caller.WaitResponse(tc.want)
		if res.Reason != tc.reason {
			t.Fatalf("%d from the callee: caller got %d %q, want %d %q", tc.code, res.StatusCode, res.Reason, tc.want, tc.reason)
		}
		callees[0].WaitRequest(sip.ACK)
		s.WaitIdle()
		if rec := s.Record(inv.CallID().Value()); rec.Disposition() != tc.condition || rec.Status != tc.want {
			t.Fatalf("%d: CDR %+v", tc.code, rec)
		}
	}
}

// TestCallSecondForkAnswersLate: both forks answer; the second 200 is ACKed and hung up, and the
// caller sees one call.
func TestCallSecondForkAnswersLate(t *testing.T) {
	s, caller, callees := callServer(t, b2bua.Config{}, 2)
	msg, inv := invite(caller)
	caller.Send(msg)
	b1 := callees[0].WaitRequest(sip.INVITE)
	b2 := callees[1].WaitRequest(sip.INVITE)
	callees[0].Respond(b1, 200, "OK", b2buatest.CalleeSDP)
	ok := caller.WaitResponse(200)
	callees[0].WaitRequest(sip.ACK)
	// The second phone answers without having seen the CANCEL (no 1xx was sent, so the PBX could
	// not send one yet).
	callees[1].Respond(b2, 200, "OK", b2buatest.CalleeSDP)
	callees[1].WaitRequest(sip.ACK)
	bye := callees[1].WaitRequest(sip.BYE)
	callees[1].Respond(bye, 200, "OK", "")
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	hangUp(t, s, caller, callees[0], inv, ok, 2)
}

// TestCallPassRedirects: with PassRedirects the caller gets the callee's 302 with its Contact.
func TestCallPassRedirects(t *testing.T) {
	s, caller, callees := callServer(t, b2bua.Config{PassRedirects: true}, 1)
	msg, _ := invite(caller)
	caller.Send(msg)
	b := callees[0].WaitRequest(sip.INVITE)
	res := sip.NewResponseFromRequest(b, 302, "Moved Temporarily", nil)
	res.To().Params.Add("tag", "r1")
	res.AppendHeader(sip.NewHeader("Contact", "<sip:alice@voicemail.example>"))
	callees[0].Send(res.String())
	got := caller.WaitResponse(302)
	if c := header(got, "Contact"); !strings.Contains(c, "sip:alice@voicemail.example") {
		t.Fatalf("302 Contact %q", c)
	}
	s.WaitIdle()
}

// TestCallBLegTimeout: the only contact never answers anything, not even 100, and the ring
// timeout is longer than the INVITE transaction's Timer B (64*T1 = 32 s): the caller gets 408.
// It takes 32 s.
func TestCallBLegTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 32 s (Timer B)")
	}
	s, caller, callees := callServer(t, b2bua.Config{RingTimeout: 60 * time.Second}, 1)
	msg, inv := invite(caller)
	caller.Send(msg)
	callees[0].WaitRequest(sip.INVITE) // and then silence; the retransmissions are ignored too
	deadline := time.Now().Add(40 * time.Second)
	for {
		m := caller.RecvMsg(time.Until(deadline))
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
	s.WaitIdle()
	if rec := s.Record(inv.CallID().Value()); rec.Status != 408 || rec.Disposition() != "no_answer" {
		t.Fatalf("CDR %+v", rec)
	}
}
