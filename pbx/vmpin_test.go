package pbx_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/internal/audiotest"
	"github.com/pbxkit/pbxkit/internal/callmedia"
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

// TestVoicemailUnplayableMessage: a message whose file is gone does not block the mailbox: the
// caller hears the "unavailable" prompt and the menu, 7 deletes it (the lamp counts one new
// message less), the next message plays and is heard, and the lamp goes off.
func TestVoicemailUnplayableMessage(t *testing.T) {
	tp, _, data := vmPBX(t)
	broken := putMessage(t, tp, data, 1800)
	if err := os.Remove(broken.Path); err != nil {
		t.Fatal(err)
	}
	good := putMessage(t, tp, data, 1400)
	lamp := mwiSubscribe(t, newClient(t, tp.addr), "600")
	lamp.expectSummary("active", "yes", 2, 0)

	ph, rtp := newClient(t, tp.addr), b2buatest.NewRTP(t)
	msg, inv := ph.Invite("201", "*97", nil, rtp.SDP())
	ph.Send(msg)
	ok := ph.WaitResponse(200)
	ph.Send(ph.InDialog("ACK", inv, ok, 1))
	pbxA := b2buatest.MediaAddr(t, ok.Body())
	rtp.WaitTone(784, 4, 2*b2buatest.Wait) // "PIN?"
	rtp.SendDigits(pbxA, "1234#")
	rtp.WaitTone(440, 4, 2*b2buatest.Wait) // "unavailable"
	rtp.WaitTone(880, 3, 2*b2buatest.Wait) // the menu
	rtp.SendDigits(pbxA, "7")
	lamp.expectSummary("active", "yes", 1, 0)
	rtp.WaitTone(1400, 25, 2*b2buatest.Wait) // the next message
	lamp.expectSummary("active", "no", 0, 1)
	rtp.WaitTone(880, 3, 2*b2buatest.Wait)
	rtp.SendDigits(pbxA, "#")
	ph.Respond(ph.WaitRequest(sip.BYE), 200, "OK", "")
	waitIdle(t, tp)

	msgs, err := tp.store.VoicemailMessages(context.Background(), "201", "")
	if err != nil || len(msgs) != 1 || msgs[0].ID != good.ID {
		t.Fatalf("messages %+v, %v; want the good one only", msgs, err)
	}
	if !strings.Contains(tp.logs.String(), "voicemail message cannot be played") {
		t.Error("the unplayable message was not logged")
	}
}

// TestVoicemailPromptsOutsideMailboxes: the generated prompts are written beside the mailboxes'
// folders (voicemail-prompts), not in voicemail/prompts, which an extension "prompts" owns.
func TestVoicemailPromptsOutsideMailboxes(t *testing.T) {
	_, _, data := vmPBX(t)
	if _, err := os.Stat(filepath.Join(data, "voicemail-prompts", "greeting.wav")); err != nil {
		t.Fatalf("prompts: %v", err)
	}
	if _, err := os.Stat(filepath.Join(data, "voicemail", "prompts")); !os.IsNotExist(err) {
		t.Fatalf("voicemail/prompts: %v, want none", err)
	}
}

// TestVoicemailRecordGreeting: in an empty mailbox, 0 after "no messages" records the greeting:
// a beep, the owner talks (a tone), '#' ends it, "saved", goodbye; greeting.wav holds the tone
// and replaces the old one, and no other file is left in the mailbox folder.
func TestVoicemailRecordGreeting(t *testing.T) {
	tp, _, data := vmPBX(t)
	dir := filepath.Join(data, "voicemail", "201")
	os.MkdirAll(dir, 0o750)
	greeting := filepath.Join(dir, "greeting.wav")
	if err := callmedia.WriteWAVFile(greeting, audiotest.Tone(500, 8000, 0, 8000)); err != nil {
		t.Fatal(err)
	}
	ph, rtp := newClient(t, tp.addr), b2buatest.NewRTP(t)
	msg, inv := ph.Invite("201", "*97", nil, rtp.SDP())
	ph.Send(msg)
	ok := ph.WaitResponse(200)
	ph.Send(ph.InDialog("ACK", inv, ok, 1))
	pbxA := b2buatest.MediaAddr(t, ok.Body())
	rtp.WaitTone(784, 4, 2*b2buatest.Wait) // "PIN?"
	rtp.SendDigits(pbxA, "1234#")
	rtp.WaitTone(392, 10, 2*b2buatest.Wait) // "no messages"
	rtp.SendDigits(pbxA, "0")
	rtp.WaitTone(1000, 5, 2*b2buatest.Wait) // the beep
	waitSilence(t, rtp)
	stop := rtp.SendTone(pbxA, messageTone)
	time.Sleep(2 * time.Second) // two seconds of greeting
	stop()
	rtp.SendDigits(pbxA, "#")
	rtp.WaitTone(880, 5, 2*b2buatest.Wait) // "saved"
	ph.Respond(ph.WaitRequest(sip.BYE), 200, "OK", "")
	waitIdle(t, tp)

	got := samplesOf(t, greeting)
	if g, old := audiotest.Goertzel(got, 8000, messageTone), audiotest.Goertzel(got, 8000, 500); g < 1e5 || g < 50*old {
		t.Fatalf("greeting.wav: power %.0f at %d Hz, %.0f at the old greeting's 500 Hz", g, messageTone, old)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*")); len(files) != 1 {
		t.Fatalf("mailbox folder: %v, want greeting.wav only", files)
	}
	if !strings.Contains(tp.logs.String(), "voicemail greeting recorded") {
		t.Error("no log line about the greeting")
	}
}
