package b2bua_test

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
)

// rounds is how many times the back-to-back tests repeat: before the call core read its B-legs'
// responses in arrival order, the provisional was lost in more than half of them.
const rounds = 200

// TestProvisionalThenFinalInOrder: a callee sends a provisional answer and its final answer back
// to back, as auto-answering phones and gateways do. sipgo hands each datagram to a goroutine of
// its own, so inside the PBX the final can overtake the provisional; the caller must still get
// both, in order, every time.
func TestProvisionalThenFinalInOrder(t *testing.T) {
	for _, tc := range []struct {
		name        string
		provisional int
		body        string
		final       int
	}{
		{"183 with SDP then 486", 183, b2buatest.CalleeSDP, 486},
		{"180 then 200", 180, "", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, caller, callees := callServer(t, b2bua.Config{}, 1)
			callee := callees[0]
			for i := range rounds {
				msg, inv := invite(caller)
				caller.Send(msg)
				b := callee.WaitRequest(sip.INVITE)
				callee.Respond(b, tc.provisional, "Progress", tc.body)
				callee.Respond(b, tc.final, "Final", tc.body)
				got, final := responsesUntilFinal(t, caller, inv)
				want := []int{tc.provisional, tc.final}
				if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
					t.Fatalf("round %d: the caller got %v, want %v", i, got, want)
				}
				if tc.final == 200 {
					caller.Send(caller.InDialog("ACK", inv, final, 1))
					callee.WaitRequest(sip.ACK)
					hangUp(t, s, caller, callee, inv, final, 2)
				} else {
					caller.AckFinal(inv, final)
					s.WaitIdle()
				}
			}
		})
	}
}

// responsesUntilFinal collects the codes of the responses to inv (but 100) up to the final one,
// which it returns too.
func responsesUntilFinal(t *testing.T, p *b2buatest.Phone, inv *sip.Request) ([]int, *sip.Response) {
	t.Helper()
	var codes []int
	for {
		res := p.Recv(b2buatest.Wait)
		if res == nil {
			t.Fatalf("no final answer; got %v", codes)
		}
		if res.CallID().Value() != inv.CallID().Value() || res.StatusCode == 100 {
			continue
		}
		codes = append(codes, res.StatusCode)
		if res.StatusCode >= 200 {
			return codes, res
		}
	}
}

// TestInDialogRequestsInOrder: key presses sent as INFO back to back, and a re-INVITE sent right
// after the ACK of the previous one, are handled in the order they arrived: the INFOs reach the
// callee in order, and the re-INVITE is passed on, not refused as crossing the previous one.
func TestInDialogRequestsInOrder(t *testing.T) {
	s, caller, callees := callServer(t, b2bua.Config{}, 1)
	callee := callees[0]
	inv, ok, _ := answeredCall(t, s, caller, callee)
	cseq := 2
	for round := range 20 {
		digits := "1234567890"
		for _, d := range digits {
			caller.Send(caller.InDialogWith("INFO", inv, ok, cseq, "Content-Type: application/dtmf-relay\r\n",
				"Signal="+string(d)+"\r\nDuration=100\r\n"))
			cseq++
		}
		var got strings.Builder
		for range digits {
			info := callee.WaitRequest(sip.INFO)
			got.WriteString(strings.TrimPrefix(strings.SplitN(string(info.Body()), "\r\n", 2)[0], "Signal="))
			callee.Respond(info, 200, "OK", "")
		}
		if got.String() != digits {
			t.Fatalf("round %d: the callee got the keys %q, want %q", round, got.String(), digits)
		}
		for range digits {
			caller.WaitResponse(200)
		}
	}
	for round := range 20 {
		caller.Send(caller.InDialogWith("INVITE", inv, ok, cseq, "Contact: <"+caller.Contact("100")+">\r\n", b2buatest.SDP))
		re := callee.WaitRequest(sip.INVITE)
		callee.Respond(re, 200, "OK", b2buatest.CalleeSDP)
		callee.WaitRequest(sip.ACK)
		if res := caller.WaitResponse(200); res.CSeq().SeqNo != uint32(cseq) {
			t.Fatalf("round %d: 200 for CSeq %d, want %d", round, res.CSeq().SeqNo, cseq)
		}
		caller.Send(caller.InDialog("ACK", inv, ok, cseq))
		cseq++
	}
	hangUp(t, s, caller, callee, inv, ok, cseq)
}
