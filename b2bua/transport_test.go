package b2bua_test

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
)

// contactTransport is the transport parameter of a message's Contact, "" without one.
func contactTransport(t *testing.T, m interface{ GetHeader(string) sip.Header }) string {
	t.Helper()
	h, ok := m.GetHeader("Contact").(*sip.ContactHeader)
	if !ok {
		t.Fatalf("no Contact in %v", m)
	}
	tr, _ := h.Address.UriParams.Get("transport")
	return strings.ToLower(tr)
}

// TestCallOverTCP: caller and callee each keep one TCP connection to the PBX. Each dialog's
// Contact says ;transport=tcp, so the phones send their ACK and BYE in the dialog over TCP, and
// the PBX sends its requests over the same connections.
func TestCallOverTCP(t *testing.T) {
	s := b2buatest.NewServer(t, b2bua.Config{}, nil)
	caller, callee := s.TCPPhone(t), s.TCPPhone(t)
	s.Register("200", callee)
	msg, inv := caller.Invite("100", "200", nil)
	caller.Send(msg)
	bInv := callee.WaitRequest(sip.INVITE)
	if bInv.Via().Transport != "TCP" || contactTransport(t, bInv) != "tcp" {
		t.Fatalf("INVITE to the TCP callee: Via %s, Contact %s", bInv.Via().Transport, header(bInv, "Contact"))
	}
	callee.Respond(bInv, 200, "OK", b2buatest.CalleeSDP)
	ok := caller.WaitResponse(200)
	if contactTransport(t, ok) != "tcp" {
		t.Fatalf("the TCP caller's 200 has Contact %s", header(ok, "Contact"))
	}
	callee.WaitRequest(sip.ACK)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	// The callee hangs up over its connection; the caller gets the BYE over its own.
	callee.Send(callee.InDialogAsCallee("BYE", bInv, 2, ""))
	callee.WaitResponse(200)
	bye := caller.WaitRequest(sip.BYE)
	if bye.Via().Transport != "TCP" {
		t.Fatalf("BYE to the caller over %s", bye.Via().Transport)
	}
	caller.Respond(bye, 200, "OK", "")
	s.WaitIdle()
	if rec := s.Record(inv.CallID().Value()); rec.HangupBy != "callee" || rec.Disposition() != "answered" {
		t.Fatalf("record %+v", rec)
	}
}

// TestCallUDPCallerTCPCallee: each dialog's Contact follows its own transport: none for the UDP
// caller, tcp for the TCP callee.
func TestCallUDPCallerTCPCallee(t *testing.T) {
	s := b2buatest.NewServer(t, b2bua.Config{}, nil)
	caller, callee := s.Phone(t), s.TCPPhone(t)
	s.Register("200", callee)
	inv, ok, bInv := answeredCall(t, s, caller, callee)
	if contactTransport(t, ok) != "" || contactTransport(t, bInv) != "tcp" {
		t.Fatalf("Contacts: caller's %s, callee's %s", header(ok, "Contact"), header(bInv, "Contact"))
	}
	hangUp(t, s, caller, callee, inv, ok, 2)
}

// TestCallLateOffer: an INVITE without SDP. The callee offers in its 200, which reaches the
// caller; the PBX holds its ACK to the callee until the caller's ACK brings the answer, and the
// ACK carries it.
func TestCallLateOffer(t *testing.T) {
	s, caller, callees := callServer(t, b2bua.Config{}, 1)
	callee := callees[0]
	msg, inv := caller.Invite("100", "200", nil, "")
	caller.Send(msg)
	bInv := callee.WaitRequest(sip.INVITE)
	if len(bInv.Body()) != 0 {
		t.Fatalf("the callee got an offer the caller never made: %q", bInv.Body())
	}
	callee.Respond(bInv, 200, "OK", b2buatest.CalleeSDP)
	ok := caller.WaitResponse(200)
	if !b2buatest.SameSession(ok.Body(), b2buatest.CalleeSDP) {
		t.Fatalf("the caller's 200 carries %q, want the callee's offer", ok.Body())
	}
	if m := callee.RecvMsg(300e6); m != nil {
		if r, isReq := m.(*sip.Request); isReq && r.Method == sip.ACK {
			t.Fatal("the callee was ACKed before the caller answered")
		}
	}
	caller.Send(caller.InDialogWith("ACK", inv, ok, 1, "", b2buatest.SDP))
	ack := callee.WaitRequest(sip.ACK)
	if !b2buatest.SameSession(ack.Body(), b2buatest.SDP) {
		t.Fatalf("the callee's ACK carries %q, want the caller's answer", ack.Body())
	}
	hangUp(t, s, caller, callee, inv, ok, 2)
}
