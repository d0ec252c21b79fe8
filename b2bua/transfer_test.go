package b2bua_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
)

// refer is the REFER the callee of the PBX's INVITE bInv sends in that dialog.
func refer(p *b2buatest.Phone, bInv *sip.Request, cseq int, referTo string) string {
	return p.InDialogAsCallee("REFER", bInv, cseq, "Contact: <"+p.Contact("callee")+">\r\nRefer-To: "+referTo+"\r\n")
}

// replacesTarget is a Refer-To naming target with Replaces for a dialog (RFC 3891 §6.1), escaped
// as a URI header.
func replacesTarget(target, callID, toTag, fromTag string) string {
	rep := callID + ";to-tag=" + toTag + ";from-tag=" + fromTag
	return "<sip:" + target + "@pbx.test?Replaces=" + url.QueryEscape(rep) + ">"
}

// notifies answers the transferor's NOTIFYs and returns the sipfrag of the final one.
func notifies(t *testing.T, p *b2buatest.Phone) string {
	t.Helper()
	for {
		n := p.WaitRequest(sip.NOTIFY)
		p.Respond(n, 200, "OK", "")
		if strings.HasPrefix(header(n, "Subscription-State"), "terminated") {
			return string(n.Body())
		}
	}
}

// TestCallBlindTransfer: the callee transfers the caller to extension 300 with REFER. The PBX
// rings 300 with the caller's SDP, re-INVITEs the caller with 300's SDP, reports to the
// transferor with NOTIFY (100, then 200) and hangs it up; the caller and 300 then talk until the
// caller's BYE reaches 300.
func TestCallBlindTransfer(t *testing.T) {
	s, caller, callees := callServer(t, b2bua.Config{}, 1)
	callee := callees[0]
	third := s.Phone(t)
	s.Register("300", third)
	inv, ok, bInv := answeredCall(t, s, caller, callee)

	refer := "REFER sip:200@" + s.Addr().String() + " SIP/2.0\r\nVia: SIP/2.0/UDP " + callee.Addr() + ";branch=z9hG4bK-refer;rport\r\n" +
		"Max-Forwards: 70\r\nFrom: " + bInv.To().Value() + ";tag=callee-tag\r\nTo: " + bInv.From().Value() + "\r\n" +
		"Call-ID: " + bInv.CallID().Value() + "\r\nCSeq: 5 REFER\r\nContact: <sip:callee@" + callee.Addr() + ">\r\n" +
		"Refer-To: <sip:300@pbx.test>\r\nContent-Length: 0\r\n\r\n"
	callee.Send(refer)
	if res := callee.WaitResponse(202); res.Reason != "Accepted" {
		t.Fatalf("REFER answered %d %s", res.StatusCode, res.Reason)
	}
	trying := callee.WaitRequest(sip.NOTIFY)
	if !strings.Contains(string(trying.Body()), "SIP/2.0 100 Trying") || header(trying, "Event") != "refer" {
		t.Fatalf("first NOTIFY: Event %q body %q", header(trying, "Event"), trying.Body())
	}
	callee.Respond(trying, 200, "OK", "")

	b3 := third.WaitRequest(sip.INVITE)
	if b3.From().Address.User != "100" || !b2buatest.SameSession(b3.Body(), b2buatest.SDP) {
		t.Fatalf("INVITE to 300 from %q with %q", b3.From().Address.User, b3.Body())
	}
	thirdSDP := strings.Replace(b2buatest.CalleeSDP, "m=audio 5000", "m=audio 7000", 1)
	third.Respond(b3, 200, "OK", thirdSDP)
	third.WaitRequest(sip.ACK)

	re := caller.WaitRequest(sip.INVITE)
	if re.CallID().Value() != inv.CallID().Value() || !b2buatest.SameSession(re.Body(), thirdSDP) {
		t.Fatalf("re-INVITE to the caller in %s with %q", re.CallID().Value(), re.Body())
	}
	// The caller's dialog keeps its session: the origin of the PBX's 200, one version later
	// (RFC 3264 §8), though another phone's description is behind it now.
	user0, id0, v0 := b2buatest.Origin(ok.Body())
	user1, id1, v1 := b2buatest.Origin(re.Body())
	if user1 != user0 || id1 != id0 || v1 == v0 || user0 == "-" {
		t.Fatalf("origin of the caller's session went from %s %s %s to %s %s %s", user0, id0, v0, user1, id1, v1)
	}
	caller.Respond(re, 200, "OK", b2buatest.SDP)
	caller.WaitRequest(sip.ACK)

	done := callee.WaitRequest(sip.NOTIFY)
	if !strings.Contains(string(done.Body()), "SIP/2.0 200 OK") || !strings.HasPrefix(header(done, "Subscription-State"), "terminated") {
		t.Fatalf("final NOTIFY: %q %q", header(done, "Subscription-State"), done.Body())
	}
	callee.Respond(done, 200, "OK", "")
	callee.Respond(callee.WaitRequest(sip.BYE), 200, "OK", "")
	// The transferor's own BYE, crossing the PBX's, gets 200, not 481.
	callee.Send(callee.InDialogAsCallee("BYE", bInv, 6, ""))
	callee.WaitResponse(200)

	caller.Send(caller.InDialog("BYE", inv, ok, 2))
	caller.WaitResponse(200)
	bye3 := third.WaitRequest(sip.BYE)
	if bye3.CallID().Value() != b3.CallID().Value() {
		t.Fatalf("BYE to 300 in another dialog: %s", bye3.CallID().Value())
	}
	third.Respond(bye3, 200, "OK", "")
	s.WaitIdle()
	s.WaitEvent(inv.CallID().Value(), b2bua.CallTransferred)
	rec := s.Record(inv.CallID().Value())
	if len(rec.Segments) != 2 || rec.Segments[0].Callee != "200" || rec.Segments[0].EndReason != "transferred" ||
		rec.Segments[1].Caller != "100" || rec.Segments[1].Callee != "300" || rec.Callee != "300" || rec.HangupBy != "caller" {
		t.Fatalf("record after the transfer: %+v", rec)
	}
}

// TestCallTransferToUnknownTarget: the transfer target does not exist; the transferor hears
// 404 in the final NOTIFY and the original call goes on.
func TestCallTransferToUnknownTarget(t *testing.T) {
	s, caller, callees := callServer(t, b2bua.Config{}, 1)
	callee := callees[0]
	inv, ok, bInv := answeredCall(t, s, caller, callee)
	callee.Send("REFER sip:200@" + s.Addr().String() + " SIP/2.0\r\nVia: SIP/2.0/UDP " + callee.Addr() + ";branch=z9hG4bK-refer2;rport\r\n" +
		"Max-Forwards: 70\r\nFrom: " + bInv.To().Value() + ";tag=callee-tag\r\nTo: " + bInv.From().Value() + "\r\n" +
		"Call-ID: " + bInv.CallID().Value() + "\r\nCSeq: 5 REFER\r\nContact: <sip:callee@" + callee.Addr() + ">\r\n" +
		"Refer-To: <sip:999@pbx.test>\r\nContent-Length: 0\r\n\r\n")
	callee.WaitResponse(202)
	callee.Respond(callee.WaitRequest(sip.NOTIFY), 200, "OK", "")
	final := callee.WaitRequest(sip.NOTIFY)
	if !strings.Contains(string(final.Body()), "SIP/2.0 404 Not Found") {
		t.Fatalf("final NOTIFY body %q", final.Body())
	}
	callee.Respond(final, 200, "OK", "")
	// Still connected: the caller's BYE reaches the callee.
	hangUp(t, s, caller, callee, inv, ok, 2)
}

// consultation is a second call the transferor makes: from its own phone as 200 to 300.
type consultation struct {
	inv *sip.Request  // the transferor's INVITE
	ok  *sip.Response // the PBX's 200 to it
	c   *sip.Request  // the PBX's INVITE to 300
}

func consult(t *testing.T, s *b2buatest.Server, from *b2buatest.Phone, fromUser string, third *b2buatest.Phone) consultation {
	t.Helper()
	msg, inv := from.Invite(fromUser, "300", nil)
	from.Send(msg)
	c := third.WaitRequest(sip.INVITE)
	thirdSDP := strings.Replace(b2buatest.CalleeSDP, "m=audio 5000", "m=audio 7000", 1)
	third.Respond(c, 200, "OK", thirdSDP)
	third.WaitRequest(sip.ACK)
	ok := from.WaitResponse(200)
	from.Send(from.InDialog("ACK", inv, ok, 1))
	return consultation{inv: inv, ok: ok, c: c}
}

// TestCallAttendedTransfer: 100 calls 200; 200 consults 300 in a second call, then transfers 100
// to 300 with REFER whose target carries Replaces naming the consultation call's dialog. The PBX
// re-INVITEs 300 with 100's session and 100 with 300's answer, so 100 and 300 talk in the first
// call; 200 is released from both calls and nothing is left ringing. The first call's record
// names all three: 100 with 200, then 100 with 300.
func TestCallAttendedTransfer(t *testing.T) {
	s, caller, callees := callServer(t, b2bua.Config{}, 1)
	transferor := callees[0]
	transferorOut := s.Phone(t) // 200's second line, for the consultation call
	third := s.Phone(t)
	s.Register("300", third)
	inv, ok, bInv := answeredCall(t, s, caller, transferor)
	cons := consult(t, s, transferorOut, "200", third)

	pbxTag, _ := cons.ok.To().Params.Get("tag")
	myTag, _ := cons.inv.From().Params.Get("tag")
	transferor.Send(refer(transferor, bInv, 5, replacesTarget("300", cons.inv.CallID().Value(), pbxTag, myTag)))
	transferor.WaitResponse(202)

	re3 := third.WaitRequest(sip.INVITE)
	if re3.CallID().Value() != cons.c.CallID().Value() || !strings.Contains(string(re3.Body()), "m=audio 4000") {
		t.Fatalf("re-INVITE to 300 in dialog %s with %q, want its own dialog and 100's session", re3.CallID().Value(), re3.Body())
	}
	third.Respond(re3, 200, "OK", strings.Replace(b2buatest.CalleeSDP, "m=audio 5000", "m=audio 7000", 1))
	third.WaitRequest(sip.ACK)
	re1 := caller.WaitRequest(sip.INVITE)
	if re1.CallID().Value() != inv.CallID().Value() || !strings.Contains(string(re1.Body()), "m=audio 7000") {
		t.Fatalf("re-INVITE to 100 in dialog %s with %q, want 300's session", re1.CallID().Value(), re1.Body())
	}
	caller.Respond(re1, 200, "OK", b2buatest.SDP)
	caller.WaitRequest(sip.ACK)

	if frag := notifies(t, transferor); !strings.Contains(frag, "SIP/2.0 200 OK") {
		t.Fatalf("final NOTIFY %q", frag)
	}
	transferor.Respond(transferor.WaitRequest(sip.BYE), 200, "OK", "")
	transferorOut.Respond(transferorOut.WaitRequest(sip.BYE), 200, "OK", "")
	// The transferor's own BYE, crossing the PBX's, is answered 200 (its dialog just ended).
	transferor.Send(transferor.InDialogAsCallee("BYE", bInv, 6, ""))
	transferor.WaitResponse(200)
	// The transferor's calls are released once their BYEs are answered, on goroutines of their own.
	for deadline := time.Now().Add(2 * time.Second); s.Engine.Active() != 1 || s.Engine.Dialogs() != 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after the transfer: %d calls, %d dialogs; want the one call of 100 and 300", s.Engine.Active(), s.Engine.Dialogs())
		}
	}
	// 100 and 300 talk: 100's BYE reaches 300 in 300's dialog.
	caller.Send(caller.InDialog("BYE", inv, ok, 3))
	caller.WaitResponse(200)
	bye := third.WaitRequest(sip.BYE)
	if bye.CallID().Value() != cons.c.CallID().Value() {
		t.Fatalf("BYE to 300 in dialog %s", bye.CallID().Value())
	}
	third.Respond(bye, 200, "OK", "")
	s.WaitIdle()

	rec := s.Record(inv.CallID().Value())
	segs := rec.Segments
	if len(segs) != 2 || segs[0].Caller != "100" || segs[0].Callee != "200" || segs[0].EndReason != "transferred" ||
		segs[1].Caller != "100" || segs[1].Callee != "300" || rec.Callee != "300" || rec.HangupBy != "caller" {
		t.Fatalf("record of the transferred call: %+v", rec)
	}
	if c := s.Record(cons.inv.CallID().Value()); len(c.Segments) != 1 || c.Segments[0].EndReason != "transferred" {
		t.Fatalf("record of the consultation call: %+v", c)
	}
}

// TestCallAttendedTransferByCaller: the caller is the transferor. 100 calls 200, then consults
// 300 and transfers 200 to it: 300 takes 100's place opposite 200.
func TestCallAttendedTransferByCaller(t *testing.T) {
	calls := make(chan *b2bua.Call, 2)
	s := b2buatest.NewServer(t, b2bua.Config{}, func(ctx context.Context, c *b2bua.Call) error {
		calls <- c
		return b2buatest.DialCallee(ctx, c)
	})
	caller, callee := s.Phone(t), s.Phone(t)
	s.Register("200", callee)
	third := s.Phone(t)
	s.Register("300", third)
	callerOut := s.Phone(t)
	inv, ok, bInv := answeredCall(t, s, caller, callee)
	cons := consult(t, s, callerOut, "100", third)

	pbxTag, _ := cons.ok.To().Params.Get("tag")
	myTag, _ := cons.inv.From().Params.Get("tag")
	caller.Send(caller.InDialogWith("REFER", inv, ok, 2, "Contact: <"+caller.Contact("100")+">\r\nRefer-To: "+
		replacesTarget("300", cons.inv.CallID().Value(), pbxTag, myTag)+"\r\n"))
	caller.WaitResponse(202)
	re3 := third.WaitRequest(sip.INVITE)
	third.Respond(re3, 200, "OK", b2buatest.CalleeSDP)
	third.WaitRequest(sip.ACK)
	re2 := callee.WaitRequest(sip.INVITE)
	if re2.CallID().Value() != bInv.CallID().Value() {
		t.Fatalf("re-INVITE to 200 in dialog %s", re2.CallID().Value())
	}
	callee.Respond(re2, 200, "OK", b2buatest.CalleeSDP)
	callee.WaitRequest(sip.ACK)
	if frag := notifies(t, caller); !strings.Contains(frag, "200 OK") {
		t.Fatalf("final NOTIFY %q", frag)
	}
	caller.Respond(caller.WaitRequest(sip.BYE), 200, "OK", "")
	callerOut.Respond(callerOut.WaitRequest(sip.BYE), 200, "OK", "")
	// The call keeps its caller's Call-ID as its name (on_hangup and logs use it), though its
	// caller's side is now 300's dialog.
	if first := <-calls; first.ID() != inv.CallID().Value() {
		t.Fatalf("the transferred call's ID is %q, want the caller's Call-ID %q", first.ID(), inv.CallID().Value())
	}
	// 200 hangs up: the BYE reaches 300, now on the caller's side of the first call.
	callee.Send(callee.InDialogAsCallee("BYE", bInv, 7, ""))
	callee.WaitResponse(200)
	third.Respond(third.WaitRequest(sip.BYE), 200, "OK", "")
	s.WaitIdle()
	rec := s.Record(inv.CallID().Value())
	if len(rec.Segments) != 2 || rec.Segments[1].Caller != "300" || rec.Segments[1].Callee != "200" || rec.HangupBy != "callee" {
		t.Fatalf("record: %+v", rec)
	}
}

// TestCallAttendedTransferUnknownDialog: Replaces names no dialog: the final NOTIFY says 481 and
// the call goes on.
func TestCallAttendedTransferUnknownDialog(t *testing.T) {
	s, caller, callees := callServer(t, b2bua.Config{}, 1)
	callee := callees[0]
	inv, ok, bInv := answeredCall(t, s, caller, callee)
	callee.Send(refer(callee, bInv, 5, replacesTarget("300", "nosuchcall@test", "a", "b")))
	callee.WaitResponse(202)
	if frag := notifies(t, callee); !strings.Contains(frag, "SIP/2.0 481") {
		t.Fatalf("final NOTIFY %q", frag)
	}
	hangUp(t, s, caller, callee, inv, ok, 2)
}

// TestCallInviteWithReplaces: a new phone sends INVITE with Replaces naming the PBX's dialog with
// the callee of a call in progress (as a phone picking up or taking over a call does): the PBX
// re-INVITEs the caller with the new phone's session, answers the new phone, and releases the
// callee. The caller then talks to the new phone.
func TestCallInviteWithReplaces(t *testing.T) {
	s, caller, callees := callServer(t, b2bua.Config{}, 1)
	callee := callees[0]
	inv, ok, bInv := answeredCall(t, s, caller, callee)
	newPhone := s.Phone(t)
	pbxTag, _ := bInv.From().Params.Get("tag")
	replaces := "Replaces: " + bInv.CallID().Value() + ";to-tag=" + pbxTag + ";from-tag=callee-tag"
	newSDP := strings.Replace(b2buatest.SDP, "m=audio 4000", "m=audio 9000", 1)
	msg, nInv := newPhone.Invite("400", "200", []string{replaces}, newSDP)
	newPhone.Send(msg)

	re := caller.WaitRequest(sip.INVITE)
	if re.CallID().Value() != inv.CallID().Value() || !strings.Contains(string(re.Body()), "m=audio 9000") {
		t.Fatalf("re-INVITE to the caller in %s with %q", re.CallID().Value(), re.Body())
	}
	caller.Respond(re, 200, "OK", b2buatest.SDP)
	caller.WaitRequest(sip.ACK)
	nOK := newPhone.WaitResponse(200)
	if !strings.Contains(string(nOK.Body()), "m=audio 4000") {
		t.Fatalf("the new phone's answer %q lacks the caller's session", nOK.Body())
	}
	newPhone.Send(newPhone.InDialog("ACK", nInv, nOK, 1))
	callee.Respond(callee.WaitRequest(sip.BYE), 200, "OK", "")
	if again := newPhone.RecvMsg(700 * 1e6); again != nil {
		if r, isRes := again.(*sip.Response); isRes && r.StatusCode == 200 {
			t.Fatal("the 200 to the new phone was retransmitted after its ACK")
		}
	}
	// The new phone hangs up: the BYE reaches the caller.
	newPhone.Send(newPhone.InDialog("BYE", nInv, nOK, 2))
	newPhone.WaitResponse(200)
	caller.Respond(caller.WaitRequest(sip.BYE), 200, "OK", "")
	s.WaitIdle()
	rec := s.Record(inv.CallID().Value())
	if len(rec.Segments) != 2 || rec.Segments[0].EndReason != "replaced" || rec.Segments[1].Callee != "400" || rec.HangupBy != "callee" {
		t.Fatalf("record: %+v", rec)
	}
	for _, r := range s.Records() {
		if r.CallID == nInv.CallID().Value() {
			t.Fatalf("the replacing INVITE has a record of its own: %+v", r)
		}
	}
	_ = ok
}

// TestCallInviteWithReplacesRefused: Replaces naming no dialog gets 481, one naming a dialog that
// just ended 603 (RFC 3891 §3).
func TestCallInviteWithReplacesRefused(t *testing.T) {
	s, caller, callees := callServer(t, b2bua.Config{}, 1)
	callee := callees[0]
	p := s.Phone(t)
	msg, nInv := p.Invite("400", "200", []string{"Replaces: nosuch@test;to-tag=a;from-tag=b"})
	p.Send(msg)
	p.AckFinal(nInv, p.WaitResponse(481))

	inv, ok, bInv := answeredCall(t, s, caller, callee)
	hangUp(t, s, caller, callee, inv, ok, 2)
	pbxTag, _ := bInv.From().Params.Get("tag")
	msg, nInv = p.Invite("400", "200", []string{"Replaces: " + bInv.CallID().Value() + ";to-tag=" + pbxTag + ";from-tag=callee-tag"})
	p.Send(msg)
	p.AckFinal(nInv, p.WaitResponse(603))
	s.WaitIdle()
}

// TestCallTransferInProgressRefusesAnother: while a blind transfer's target rings, a second REFER
// and a re-INVITE from the transferee get 491; when the target answers, the transfer completes.
func TestCallTransferInProgressRefusesAnother(t *testing.T) {
	s, caller, callees := callServer(t, b2bua.Config{}, 1)
	callee := callees[0]
	third := s.Phone(t)
	s.Register("300", third)
	inv, ok, bInv := answeredCall(t, s, caller, callee)
	callee.Send(refer(callee, bInv, 5, "<sip:300@pbx.test>"))
	callee.WaitResponse(202)
	b3 := third.WaitRequest(sip.INVITE)
	third.Respond(b3, 180, "Ringing", "")

	callee.Send(refer(callee, bInv, 6, "<sip:300@pbx.test>"))
	if res := callee.WaitResponse(491); res.CSeq().MethodName != sip.REFER {
		t.Fatalf("491 for %s", res.CSeq().Value())
	}
	caller.Send(caller.InDialogWith("INVITE", inv, ok, 2, "Contact: <"+caller.Contact("100")+">\r\n", b2buatest.SDP))
	if res := caller.WaitResponse(491); res.CSeq().MethodName != sip.INVITE {
		t.Fatalf("491 for %s", res.CSeq().Value())
	}

	third.Respond(b3, 200, "OK", b2buatest.CalleeSDP)
	third.WaitRequest(sip.ACK)
	re := caller.WaitRequest(sip.INVITE)
	caller.Respond(re, 200, "OK", b2buatest.SDP)
	caller.WaitRequest(sip.ACK)
	if frag := notifies(t, callee); !strings.Contains(frag, "200 OK") {
		t.Fatalf("final NOTIFY %q", frag)
	}
	callee.Respond(callee.WaitRequest(sip.BYE), 200, "OK", "")
	hangUp(t, s, caller, third, inv, ok, 3)
}
