package pbx_test

import (
	"context"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// TestVoicemailMailboxFull: a mailbox holding its maximum of messages takes no more: the caller
// hears the "full" prompt (not the greeting and beep), is hung up, nothing is recorded, and the
// log says why.
func TestVoicemailMailboxFull(t *testing.T) {
	tp, phone201, _ := vmPBX(t)
	pbx.SetVoicemailMaxMessages(tp.PBX, 1)
	ctx := context.Background()
	if err := tp.store.AddVoicemail(ctx, &store.VoicemailMessage{Mailbox: "201", Caller: "300", CallID: "earlier",
		Path: t.TempDir() + "/earlier.wav", Seconds: 3}); err != nil {
		t.Fatal(err)
	}

	caller, callerRTP := newClient(t, tp.addr), b2buatest.NewRTP(t)
	msg, inv := caller.Invite("100", "201", nil, callerRTP.SDP())
	caller.Send(msg)
	b := phone201.WaitRequest(sip.INVITE)
	phone201.Respond(b, 180, "Ringing", "")
	phone201.AcceptCancel(b) // 201's ring timeout
	ok := caller.WaitResponse(200)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	callerRTP.WaitTone(349, 5, 2*b2buatest.Wait) // "the mailbox is full"
	bye := caller.WaitRequest(sip.BYE)
	caller.Respond(bye, 200, "OK", "")
	waitIdle(t, tp)

	if msgs, err := tp.store.VoicemailMessages(ctx, "201", ""); err != nil || len(msgs) != 1 || msgs[0].CallID != "earlier" {
		t.Fatalf("messages after a call to the full mailbox: %+v, %v", msgs, err)
	}
	if !strings.Contains(tp.logs.String(), "mailbox full") {
		t.Fatal("no log line says the mailbox was full")
	}
}
