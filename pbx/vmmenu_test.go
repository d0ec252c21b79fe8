package pbx_test

import (
	"context"
	"fmt"
	"net/netip"
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
	"github.com/pbxkit/pbxkit/store"
)

// putMessage files a message of one second of freq in mailbox 201.
func putMessage(t *testing.T, tp *testPBX, data string, freq float64) *store.VoicemailMessage {
	t.Helper()
	dir := filepath.Join(data, "voicemail", "201")
	os.MkdirAll(dir, 0o750)
	path := filepath.Join(dir, time.Now().Format("150405.000000")+".wav")
	if err := callmedia.WriteWAVFile(path, audiotest.Tone(freq, 8000, 0, 8000)); err != nil {
		t.Fatal(err)
	}
	m := &store.VoicemailMessage{Mailbox: "201", Caller: "100", Path: path, Seconds: 1}
	if err := tp.store.AddVoicemail(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestVoicemailMenu: *98 asks for the mailbox number and the PIN (after a wrong PIN both are
// asked again), plays the new message, 1 plays it again, 9 keeps it, the next (older, saved)
// message plays, # goes on; no more messages: goodbye and hang-up. Both messages stay, saved.
func TestVoicemailMenu(t *testing.T) {
	tp, _, data := vmPBX(t)
	ctx := context.Background()
	older := putMessage(t, tp, data, 1800)
	if err := tp.store.SetVoicemailFolder(ctx, "201", older.ID, store.FolderSaved); err != nil {
		t.Fatal(err)
	}
	putMessage(t, tp, data, 1400)

	ph, rtp := newClient(t, tp.addr), b2buatest.NewRTP(t)
	msg, inv := ph.Invite("100", "*98", nil, rtp.SDP())
	ph.Send(msg)
	ok := ph.WaitResponse(200)
	ph.Send(ph.InDialog("ACK", inv, ok, 1))
	pbxA := b2buatest.MediaAddr(t, ok.Body())
	rtp.WaitTone(659, 4, 2*b2buatest.Wait) // "mailbox?"
	rtp.SendDigits(pbxA, "201#")
	rtp.WaitTone(784, 4, 2*b2buatest.Wait) // "PIN?"
	rtp.SendDigits(pbxA, "9999#")
	rtp.WaitTone(392, 10, 2*b2buatest.Wait) // "invalid"
	rtp.WaitTone(659, 4, 2*b2buatest.Wait)  // as Asterisk does: the mailbox again, then the PIN
	rtp.SendDigits(pbxA, "201#")
	rtp.WaitTone(784, 4, 2*b2buatest.Wait)
	rtp.SendDigits(pbxA, "1234#")

	rtp.WaitTone(1400, 25, 2*b2buatest.Wait) // the new message
	rtp.WaitTone(880, 3, 2*b2buatest.Wait)   // the menu
	rtp.SendDigits(pbxA, "1")
	rtp.WaitTone(1400, 25, 2*b2buatest.Wait) // again
	rtp.WaitTone(880, 3, 2*b2buatest.Wait)
	rtp.SendDigits(pbxA, "9")
	rtp.WaitTone(1800, 25, 2*b2buatest.Wait) // the saved message
	rtp.WaitTone(880, 3, 2*b2buatest.Wait)
	rtp.SendDigits(pbxA, "#")
	rtp.WaitTone(392, 20, 2*b2buatest.Wait) // no more messages
	ph.Respond(ph.WaitRequest(sip.BYE), 200, "OK", "")
	waitIdle(t, tp)

	msgs, err := tp.store.VoicemailMessages(ctx, "201", store.FolderSaved)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("saved messages %+v, %v; want both", msgs, err)
	}
	if !strings.Contains(tp.logs.String(), "voicemail login failed") {
		t.Error("the wrong PIN was not logged")
	}
}

// TestVoicemailLoginRefused: three wrong PINs end the call; a mailbox that is off is refused
// like a wrong PIN (a PIN is asked all the same, so numbers cannot be probed); nothing is
// marked heard.
func TestVoicemailLoginRefused(t *testing.T) {
	tp, _, data := vmPBX(t)
	putMessage(t, tp, data, 1400)
	tp.addExt(t, "202", "pw202")
	ph, rtp := newClient(t, tp.addr), b2buatest.NewRTP(t)
	msg, inv := ph.Invite("202", "*97", nil, rtp.SDP()) // 202's mailbox is off
	ph.Send(msg)
	ok := ph.WaitResponse(200)
	ph.Send(ph.InDialog("ACK", inv, ok, 1))
	pbxA := b2buatest.MediaAddr(t, ok.Body())
	for range 3 {
		rtp.WaitTone(784, 4, 2*b2buatest.Wait)
		rtp.SendDigits(pbxA, "1234#")
		rtp.WaitTone(392, 10, 2*b2buatest.Wait)
	}
	ph.Respond(ph.WaitRequest(sip.BYE), 200, "OK", "")
	waitIdle(t, tp)
	if c, _ := tp.store.MailboxCounts(context.Background(), "201"); c != (store.MailboxCounts{New: 1}) {
		t.Fatalf("counts %+v", c)
	}
}

// TestVoicemailGreetingAndShortMessage: a mailbox's own greeting.wav plays instead of the
// default; a caller who hangs up right after the beep leaves no message (and no file).
func TestVoicemailGreetingAndShortMessage(t *testing.T) {
	tp, phone201, data := vmPBX(t)
	dir := filepath.Join(data, "voicemail", "201")
	os.MkdirAll(dir, 0o750)
	if err := callmedia.WriteWAVFile(filepath.Join(dir, "greeting.wav"), audiotest.Tone(500, 8000, 0, 4000)); err != nil {
		t.Fatal(err)
	}
	caller, rtp := newClient(t, tp.addr), b2buatest.NewRTP(t)
	msg, inv := caller.Invite("100", "201", nil, rtp.SDP())
	caller.Send(msg)
	phone201.Respond(phone201.WaitRequest(sip.INVITE), 486, "Busy Here", "")
	ok := caller.WaitResponse(200)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	rtp.WaitTone(500, 10, 2*b2buatest.Wait) // the mailbox's greeting
	rtp.WaitTone(1000, 5, 2*b2buatest.Wait) // the beep
	waitSilence(t, rtp)                     // past its end: the recording runs
	caller.Send(caller.InDialog("BYE", inv, ok, 2))
	caller.WaitResponse(200)
	waitIdle(t, tp)
	deadline := time.Now().Add(b2buatest.Wait)
	for !strings.Contains(tp.logs.String(), "voicemail too short") {
		if time.Now().After(deadline) {
			t.Fatal("no log line about the short message")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if msgs, _ := tp.store.VoicemailMessages(context.Background(), "201", ""); len(msgs) != 0 {
		t.Fatalf("messages %+v, want none", msgs)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.wav"))
	if len(files) != 1 { // greeting.wav only
		t.Fatalf("files %v, want the greeting only", files)
	}
}

// TestVoicemailOwnMailboxWithoutPIN: *97 from 201, authenticated by digest (407, then
// credentials), enters 201's mailbox directly when it has no PIN: the message plays at once.
func TestVoicemailOwnMailboxWithoutPIN(t *testing.T) {
	tp, _, data := vmPBXWith(t, pbx.Config{}, "")
	putMessage(t, tp, data, 1400)
	ph, rtp := newClient(t, tp.addr), b2buatest.NewRTP(t)
	r := reqSpec{Method: "INVITE", From: "201", To: "*97", CallID: fmt.Sprintf("vm-%d@test", time.Now().UnixNano()),
		Headers: []string{"Contact: <" + ph.Contact("201") + ">", "Content-Type: application/sdp"}, Body: rtp.SDP()}
	first := ph.Build(r)
	ph.Send(first)
	res := awaitFinal(t, ph, parseRequest(t, first), 5*time.Second)
	challenge := final(res)
	if challenge.StatusCode != 407 {
		t.Fatalf("unauthenticated *97: %d, want 407", challenge.StatusCode)
	}
	ackFinal(ph, parseRequest(t, first), challenge)
	r.CSeq = 2
	r.Headers = append(r.Headers, authorize(t, challenge, r, "201", "pw201", "MD5"))
	msg := ph.Build(r)
	inv := parseRequest(t, msg)
	ph.Send(msg)
	ok := ph.WaitResponse(200)
	ph.Send(ph.InDialogWith("ACK", inv, ok, 2, ""))
	pbxA := b2buatest.MediaAddr(t, ok.Body())
	rtp.WaitTone(1400, 25, 2*b2buatest.Wait) // the message, no PIN asked
	if got, _ := rtp.Received(); audiotest.Goertzel(got, 8000, 784) > audiotest.Goertzel(got, 8000, 1400)/50 {
		t.Error("the PIN prompt played")
	}
	rtp.WaitTone(880, 3, 2*b2buatest.Wait)
	rtp.SendDigits(pbxA, "#")
	ph.Respond(ph.WaitRequest(sip.BYE), 200, "OK", "")
	waitIdle(t, tp)
}

// parseRequest parses a request the test built.
func parseRequest(t *testing.T, msg string) *sip.Request {
	t.Helper()
	m, err := sip.ParseMessage([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	return m.(*sip.Request)
}

// TestLuaVoicemailBuiltIn: call:voicemail in a Lua dialplan runs the built-in application: to
// 201 (voicemail on) the PBX answers with the greeting; to 202 (voicemail off) the result is
// status 480, "no voicemail", and the script refuses with it.
func TestLuaVoicemailBuiltIn(t *testing.T) {
	script := filepath.Join(t.TempDir(), "vm.lua")
	os.WriteFile(script, []byte(`
function route(call)
  local r = call:voicemail(call.to)
  if not r.answered then return call:reject(r.status, r.reason) end
end
`), 0o600)
	tp, _, _ := vmPBXWith(t, pbx.Config{DialplanScript: script,
		Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, "1234")
	tp.addExt(t, "202", "pw202")
	caller := newClient(t, tp.addr)
	msg, inv := caller.Invite("100", "202", nil)
	caller.Send(msg)
	if f := final(awaitFinal(t, caller, inv, 10*time.Second)); f.StatusCode != 480 || f.Reason != "no voicemail" {
		t.Fatalf("to 202: %d %s, want 480 no voicemail", f.StatusCode, f.Reason)
	}
	rtp := b2buatest.NewRTP(t)
	msg, inv = caller.Invite("100", "201", nil, rtp.SDP())
	caller.Send(msg)
	ok := caller.WaitResponse(200)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	rtp.WaitTone(784, 5, 2*b2buatest.Wait) // the greeting
	caller.Send(caller.InDialog("BYE", inv, ok, 2))
	caller.WaitResponse(200)
	waitIdle(t, tp)
}

// waitSilence waits until the newest 100 ms of audio rtp received are silent, or fails.
func waitSilence(t *testing.T, rtp *b2buatest.RTP) {
	t.Helper()
	for deadline := time.Now().Add(2 * b2buatest.Wait); ; time.Sleep(10 * time.Millisecond) {
		got, _ := rtp.Received()
		if len(got) >= 800 && audiotest.Level(got[len(got)-800:]) < 50 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no silence received")
		}
	}
}

// TestVoicemailNoG711: a caller offering no G.711 cannot be recorded: the PBX does not answer
// it, and it gets what it would have got without voicemail (486: 201 is busy).
func TestVoicemailNoG711(t *testing.T) {
	tp, phone201, _ := vmPBX(t)
	caller := newClient(t, tp.addr)
	g722 := "v=0\r\no=- 3 3 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 4002 RTP/AVP 9\r\na=rtpmap:9 G722/8000\r\n"
	msg, inv := caller.Invite("100", "201", nil, g722)
	caller.Send(msg)
	b := phone201.WaitRequest(sip.INVITE)
	phone201.Respond(b, 486, "Busy Here", "")
	if f := final(awaitFinal(t, caller, inv, 10*time.Second)); f.StatusCode != 486 {
		t.Fatalf("caller got %d %s, want 486", f.StatusCode, f.Reason)
	}
	if !strings.Contains(tp.logs.String(), "voicemail cannot answer") {
		t.Error("no log line about the refused answer")
	}
	waitIdle(t, tp)
}
