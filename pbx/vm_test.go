package pbx_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/internal/audiotest"
	"github.com/pbxkit/pbxkit/media"
	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// messageTone is what the caller says in the voicemail tests: apart from the prompts (330-880
// Hz) and the recording beep (1 kHz).
const messageTone = 1400

// vmPBX is a PBX with the media relay, a data directory and 127.0.0.0/8 trusted, so the built-in
// voicemail runs; extension 201 has voicemail on with PIN 1234 and a phone registered that
// never answers (rung for 1 s).
func vmPBX(t *testing.T) (tp *testPBX, phone201 *uaClient, data string) {
	t.Helper()
	return vmPBXWith(t, pbx.Config{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, "1234")
}

// vmPBXWith is vmPBX over cfg (its trusted networks, dialplan) with 201's PIN given ("" none).
func vmPBXWith(t *testing.T, cfg pbx.Config, pin string) (tp *testPBX, phone201 *uaClient, data string) {
	t.Helper()
	lo := freeEvenRange(t, 16)
	data = t.TempDir()
	cfg.RTPPortMin, cfg.RTPPortMax, cfg.DataDir = lo, lo+15, data
	tp = startPBX(t, cfg)
	phone201 = newClient(t, tp.addr)
	bind(t, tp, "201", phone201)
	on, ring := true, 1
	if _, err := tp.store.UpdateExtension(context.Background(), "201",
		store.ExtensionPatch{Voicemail: &on, VMPIN: &pin, RingTimeout: &ring}); err != nil {
		t.Fatal(err)
	}
	return tp, phone201, data
}

// samplesOf reads a WAV file's audio.
func samplesOf(t *testing.T, path string) []int16 {
	t.Helper()
	s, err := media.LoadSamples(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []int16
	frame := make([]int16, 160)
	for s.Samples(frame) {
		out = append(out, frame...)
	}
	return out
}

// TestVoicemailLeaveAndListen: a call 201 does not answer goes to its mailbox; the caller hears
// the greeting and the beep, talks (a tone) and hangs up; the message is filed with its WAV under
// the data directory, and 201's message-waiting lamp goes on (yes, 1/0). 201 dials *97, enters
// its PIN as RFC 4733 key presses and hears the message (the same tone as recorded, by Goertzel);
// once played it is heard (no, 0/1); 7 deletes it with its file (no, 0/0), and the PBX says
// goodbye and hangs up.
func TestVoicemailLeaveAndListen(t *testing.T) {
	tp, phone201, data := vmPBX(t)
	ctx := context.Background()
	lamp := mwiSubscribe(t, newClient(t, tp.addr), "600")
	lamp.expectSummary("active", "no", 0, 0)

	// The message.
	caller, callerRTP := newClient(t, tp.addr), b2buatest.NewRTP(t)
	msg, inv := caller.Invite("100", "201", nil, callerRTP.SDP())
	caller.Send(msg)
	b := phone201.WaitRequest(sip.INVITE)
	phone201.Respond(b, 180, "Ringing", "")
	phone201.AcceptCancel(b) // 201's ring timeout
	ok := caller.WaitResponse(200)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	pbxA := b2buatest.MediaAddr(t, ok.Body())
	callerRTP.WaitTone(784, 5, 2*b2buatest.Wait)  // the greeting's last note
	callerRTP.WaitTone(1000, 5, 2*b2buatest.Wait) // the beep
	stop := callerRTP.SendTone(pbxA, messageTone)
	time.Sleep(2 * time.Second) // two seconds of message
	stop()
	caller.Send(caller.InDialog("BYE", inv, ok, 2))
	caller.WaitResponse(200)
	lamp.expectSummary("active", "yes", 1, 0)

	msgs, err := tp.store.VoicemailMessages(ctx, "201", "")
	if err != nil || len(msgs) != 1 {
		t.Fatalf("messages %+v, %v", msgs, err)
	}
	m := msgs[0]
	if m.Caller != "100" || m.CallID != inv.CallID().Value() || m.Folder != store.FolderNew || m.Seconds < 1 ||
		filepath.Dir(m.Path) != filepath.Join(data, "voicemail", "201") {
		t.Fatalf("message %+v", m)
	}
	recorded := samplesOf(t, m.Path)
	if g, beep := audiotest.Goertzel(recorded, 8000, messageTone), audiotest.Goertzel(recorded, 8000, 1000); g < 1e5 || g < 50*beep {
		t.Fatalf("the recording's power: %.0f at %d Hz, %.0f at 1000 Hz; want the caller's tone", g, messageTone, beep)
	}
	waitIdle(t, tp)

	// *97.
	owner, ownerRTP := newClient(t, tp.addr), b2buatest.NewRTP(t)
	msg, inv = owner.Invite("201", "*97", nil, ownerRTP.SDP())
	owner.Send(msg)
	ok = owner.WaitResponse(200)
	owner.Send(owner.InDialog("ACK", inv, ok, 1))
	pbxA = b2buatest.MediaAddr(t, ok.Body())
	ownerRTP.WaitTone(784, 4, 2*b2buatest.Wait) // the PIN prompt
	ownerRTP.SendDigits(pbxA, "1234#")
	ownerRTP.WaitTone(messageTone, 10, 2*b2buatest.Wait) // the message begins
	got, _ := ownerRTP.Received()
	got = ownerRTP.WaitAudio(len(got)+25*160, b2buatest.Wait)
	played := got[len(got)-25*160:] // half a second of the message, well inside its two seconds
	// The same tone as recorded, about as loud (G.711 twice: into the file, back to the phone).
	pg, rg := audiotest.Goertzel(played, 8000, messageTone), audiotest.Goertzel(recorded, 8000, messageTone)
	if beep := audiotest.Goertzel(played, 8000, 1000); pg < 50*beep || pg < rg/2 || pg > 2*rg {
		t.Fatalf("played back: power %.0f at %d Hz (recorded %.0f), %.0f at the beep's 1000 Hz", pg, messageTone, rg, beep)
	}
	lamp.expectSummary("active", "no", 0, 1) // heard
	ownerRTP.SendDigits(pbxA, "7")
	lamp.expectSummary("active", "no", 0, 0)
	if _, err := os.Stat(m.Path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("deleted message's file: %v", err)
	}
	bye := owner.WaitRequest(sip.BYE) // no more messages: goodbye
	owner.Respond(bye, 200, "OK", "")
	waitIdle(t, tp)
}
