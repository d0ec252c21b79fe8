package pbx_test

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/pbx"
)

// vmTryPINs dials *97 as 201 and keys each PIN in turn (the PIN prompt, the keys, the "invalid"
// prompt after each); the PBX hangs up after the last refusal.
func vmTryPINs(t *testing.T, tp *testPBX, pins ...string) {
	t.Helper()
	ph, rtp := newClient(t, tp.addr), b2buatest.NewRTP(t)
	msg, inv := ph.Invite("201", "*97", nil, rtp.SDP())
	ph.Send(msg)
	ok := ph.WaitResponse(200)
	ph.Send(ph.InDialog("ACK", inv, ok, 1))
	pbxA := b2buatest.MediaAddr(t, ok.Body())
	for _, pin := range pins {
		rtp.WaitTone(784, 4, 2*b2buatest.Wait) // "PIN?"
		rtp.SendDigits(pbxA, pin+"#")
		rtp.WaitTone(392, 10, 2*b2buatest.Wait) // "invalid"
	}
	ph.Respond(ph.WaitRequest(sip.BYE), 200, "OK", "")
	waitIdle(t, tp)
}

// TestVoicemailPINLockout: wrong PINs count across calls: after the limit (4 here, 10 by
// default) the mailbox is locked, and a later call keying the right PIN is refused like a wrong
// one, with a log line naming the lockout; the message stays new.
func TestVoicemailPINLockout(t *testing.T) {
	tp, _, data := vmPBX(t)
	pbx.SetVoicemailPINLimit(tp.PBX, 4)
	putMessage(t, tp, data, 1400)
	vmTryPINs(t, tp, "1111", "2222", "3333") // one call: three wrong, the PBX hangs up
	if strings.Contains(tp.logs.String(), "voicemail locked out") {
		t.Fatal("locked after three wrong PINs")
	}
	vmTryPINs(t, tp, "4444", "1234", "1234") // the fourth wrong PIN (another call) locks: the right one is refused
	logs := tp.logs.String()
	if !strings.Contains(logs, "voicemail locked out after wrong PINs") || !strings.Contains(logs, "src_ip=127.0.0.1") {
		t.Fatalf("no lockout log line:\n%s", logs)
	}
	if !strings.Contains(logs, "voicemail login refused: locked out") {
		t.Fatal("the right PIN during the lockout was not refused as locked")
	}
	if strings.Contains(logs, "msg=\"voicemail login\"") {
		t.Fatal("a login succeeded during the lockout")
	}
}
