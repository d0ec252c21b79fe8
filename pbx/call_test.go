package pbx_test

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
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
		err := tp.store.PutBinding(context.Background(), store.Binding{Extension: "200", Contact: "sip:200@" + callee.Addr(),
			Source: callee.Addr(), Transport: "udp", ExpiresAt: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, callee)
	}
	return tp, newClient(t, tp.addr), cs
}

func invite(c *uaClient) (string, *sip.Request) { return c.Invite("100", "200", nil) }

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
func answeredCall(t *testing.T, _ *testPBX, caller, callee *uaClient) (inv *sip.Request, ok *sip.Response, bInv *sip.Request) {
	t.Helper()
	return b2buatest.AnsweredCall(t, caller, callee)
}

// reinviteFrom builds a re-INVITE in the caller's dialog with body.
func reinviteFrom(c *uaClient, inv *sip.Request, ok *sip.Response, cseq int, body string) string {
	m := c.InDialog("INVITE", inv, ok, cseq)
	m = strings.Replace(m, "Content-Length: 0\r\n\r\n", "Contact: <sip:100@"+c.Addr()+">\r\nContent-Type: application/sdp\r\n"+
		"Content-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body, 1)
	return m
}

// TestCallLimit: with MaxCalls 1, a second call while the first rings gets 503 with Retry-After.
func TestCallLimit(t *testing.T) {
	tp, caller, callees := callPBX(t, pbx.Config{MaxCalls: 1}, 1)
	msg, _ := invite(caller)
	caller.Send(msg)
	b := callees[0].WaitRequest(sip.INVITE)
	callees[0].Respond(b, 180, "Ringing", "")
	caller.WaitResponse(180)
	second := newClient(t, tp.addr)
	msg2, _ := invite(second)
	second.Send(msg2)
	res := second.WaitResponse(503)
	if res.Reason != "Service Unavailable" || header(res, "Retry-After") == "" {
		t.Fatalf("over the limit: %d %s Retry-After=%q", res.StatusCode, res.Reason, header(res, "Retry-After"))
	}
	callees[0].Respond(b, 486, "Busy Here", "")
	caller.WaitResponse(486)
	waitIdle(t, tp)
}

// TestShutdownHangsUpCalls: an answered call is hung up on both sides when the PBX shuts down,
// shutdown waits for the BYEs' answers, and the record says the PBX ended it.
func TestShutdownHangsUpCalls(t *testing.T) {
	tp, caller, callees := callPBX(t, pbx.Config{}, 1)
	inv, _, _ := answeredCall(t, tp, caller, callees[0])
	done := make(chan error, 1)
	go func() { done <- tp.Shutdown(context.Background()) }()
	byeB, byeA := callees[0].WaitRequest(sip.BYE), caller.WaitRequest(sip.BYE)
	// Shutdown waits (a while) for the phones to answer its BYEs.
	select {
	case err := <-done:
		t.Fatalf("shutdown returned (%v) before its BYEs were answered", err)
	case <-time.After(300 * time.Millisecond):
	}
	callees[0].Respond(byeB, 200, "OK", "")
	caller.Respond(byeA, 200, "OK", "")
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

// TestShutdownWhileRingingRacesAnswer: the PBX shuts down while a call rings, and the callee's
// 200 crosses the CANCEL. Whichever the PBX sees first, both sides end: the callee's 200 is
// ACKed and BYEd, the caller gets 503, or 200 and then BYE.
func TestShutdownWhileRingingRacesAnswer(t *testing.T) {
	tp, caller, callees := callPBX(t, pbx.Config{}, 1)
	callee := callees[0]
	msg, _ := invite(caller)
	caller.Send(msg)
	b := callee.WaitRequest(sip.INVITE)
	callee.Respond(b, 180, "Ringing", "")
	caller.WaitResponse(180)
	done := make(chan error, 1)
	go func() { done <- tp.Shutdown(context.Background()) }()
	cancel := callee.WaitRequest(sip.CANCEL)
	callee.Respond(b, 200, "OK", calleeSDP) // crosses the CANCEL
	callee.Respond(cancel, 200, "OK", "")
	callee.WaitRequest(sip.ACK)
	callee.Respond(callee.WaitRequest(sip.BYE), 200, "OK", "")
	for final := false; !final; {
		switch m := caller.RecvMsg(5 * time.Second).(type) {
		case *sip.Response:
			switch m.StatusCode {
			case 503:
				final = true
			case 200:
				caller.Respond(caller.WaitRequest(sip.BYE), 200, "OK", "")
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
	caller.Send(msg)
	b, from := callees[0].WaitRequestFrom(sip.INVITE)
	if from.(*net.UDPAddr).Port != tp.addr.Port {
		t.Fatalf("INVITE came from %s, not the PBX's listener %s", from, tp.addr)
	}
	callees[0].Respond(b, 486, "Busy Here", "")
	caller.WaitResponse(486)
	waitIdle(t, tp)
}
