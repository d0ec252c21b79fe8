package pbx_test

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/pbx"
)

// TestCalleeAnswerWithoutToIsSurvived: a callee answers the PBX's INVITE with a 200 that lacks To
// and From. The PBX neither crashes nor connects the call: the caller gets 502 (an invalid answer
// from downstream), and the PBX keeps serving.
func TestCalleeAnswerWithoutToIsSurvived(t *testing.T) {
	tp, caller, callees := callPBX(t, pbx.Config{}, 1)
	msg, _ := invite(caller)
	caller.Send(msg)
	b := callees[0].WaitRequest(sip.INVITE)
	res := sip.NewResponseFromRequest(b, 200, "OK", nil).String()
	var kept []string
	for _, l := range strings.Split(res, "\r\n") {
		if strings.HasPrefix(l, "To:") || strings.HasPrefix(l, "From:") {
			continue
		}
		kept = append(kept, l)
	}
	callees[0].Send(strings.Join(kept, "\r\n"))
	if final := caller.WaitResponse(502); final.Reason != "Bad Gateway" {
		t.Fatalf("got %d %s, want 502 Bad Gateway", final.StatusCode, final.Reason)
	}
	if r := caller.Do(caller.Build(reqSpec{Method: "OPTIONS", To: "200"})); r.StatusCode != 200 {
		t.Fatalf("PBX stopped answering: %d", r.StatusCode)
	}
	waitIdle(t, tp)
}
