package b2buatest

import (
	"testing"

	"github.com/emiago/sipgo/sip"
)

// The steps of a plain call between two phones, as the call-flow tests of package b2bua and of
// package pbx both take them.

// AnsweredCall has caller (as 100) call 200 with SDP; callee rings (180) and answers (200 with
// CalleeSDP); both ACKs are checked and sent. It returns the caller's INVITE, the 200 it got and
// the INVITE the callee got.
func AnsweredCall(t testing.TB, caller, callee *Phone) (inv *sip.Request, ok *sip.Response, bInv *sip.Request) {
	t.Helper()
	msg, inv := caller.Invite("100", "200", nil)
	caller.Send(msg)
	caller.WaitResponse(100)
	bInv = callee.WaitRequest(sip.INVITE)
	callee.Respond(bInv, 180, "Ringing", "")
	if r := caller.WaitResponse(180); r.To().Params == nil {
		t.Fatal("180 without To tag")
	}
	callee.Respond(bInv, 200, "OK", CalleeSDP)
	ok = caller.WaitResponse(200)
	callee.WaitRequest(sip.ACK)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	return inv, ok, bInv
}

// Callee is what a callee phone does in a test: wait for requests and answer them.
type Callee interface {
	WaitRequest(sip.RequestMethod) *sip.Request
	Respond(req *sip.Request, code int, reason string, body string)
}

// HangUp ends an answered call with the caller's BYE (CSeq cseq): it is answered 200 and the
// callee gets a BYE, which it answers.
func HangUp(t testing.TB, caller *Phone, callee Callee, inv *sip.Request, ok *sip.Response, cseq int) {
	t.Helper()
	caller.Send(caller.InDialog("BYE", inv, ok, cseq))
	caller.WaitResponse(200)
	callee.Respond(callee.WaitRequest(sip.BYE), 200, "OK", "")
}

// SendInfoDigits sends each key of digits in a SIP INFO (application/dtmf-relay, "Signal=5")
// in the dialog of the phone's INVITE inv, answered ok, from CSeq cseq on; each must be answered
// 200. It returns the next CSeq.
func (p *Phone) SendInfoDigits(inv *sip.Request, ok *sip.Response, cseq int, digits string) int {
	p.t.Helper()
	for _, d := range digits {
		p.Send(p.InDialogWith("INFO", inv, ok, cseq, "Content-Type: application/dtmf-relay\r\n",
			"Signal="+string(d)+"\r\nDuration=160\r\n"))
		p.WaitResponse(200)
		cseq++
	}
	return cseq
}
