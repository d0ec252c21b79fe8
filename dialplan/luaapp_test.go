package dialplan_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/dialplan"
	"github.com/pbxkit/pbxkit/internal/audiotest"
	"github.com/pbxkit/pbxkit/internal/callmedia"
)

// ivrScript answers, gathers an extension number behind a prompt and connects to it; key presses
// during the bridged call are printed by on_dtmf.
const ivrScript = `
function route(call)
  local a = call:answer()
  if not a.answered then return call:reject(480) end
  local ext = call:gather({max = 4, timeout = 5, terminator = "#", prompt = "prompt.wav"})
  print("gathered", ext)
  local r = call:connect(ext)
  if not r.answered then
    call:play("tone:busy", {loop = 2})
  end
end

function on_dtmf(call, digit, side)
  print("key", digit, side)
end
`

// logLines collects a Lua engine's log messages.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

// wait waits for a line containing s, or fails the test.
func (l *logLines) wait(t *testing.T, s string) {
	t.Helper()
	for deadline := time.Now().Add(b2buatest.Wait); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		l.mu.Lock()
		all := strings.Join(l.lines, "\n")
		l.mu.Unlock()
		if strings.Contains(all, s) {
			return
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Fatalf("no log line %q in:\n%s", s, strings.Join(l.lines, "\n"))
}

// ivrServer runs script on a server with the media relay; the script's folder holds prompt.wav,
// 600 Hz for a second.
func ivrServer(t *testing.T, script string, cfg dialplan.LuaConfig) (*b2buatest.Server, *logLines) {
	t.Helper()
	logs := &logLines{}
	cfg.Logger = logTo(&logs.mu, &logs.lines)
	l := newLua(t, script, cfg)
	prompt := filepath.Join(filepath.Dir(l.Script()), "prompt.wav")
	if err := callmedia.WriteWAVFile(prompt, audiotest.Tone(600, 8000, 0, 8000)); err != nil {
		t.Fatal(err)
	}
	return b2buatest.NewServer(t, b2bua.Config{Media: b2buatest.MediaRelay(t, 8)}, l.Handle), logs
}

func TestLuaIVRConnectsToTheDigitsGathered(t *testing.T) {
	for _, via := range []string{"rfc4733", "info"} {
		t.Run(via, func(t *testing.T) {
			s, logs := ivrServer(t, ivrScript, dialplan.LuaConfig{})
			callee, calleeRTP := s.Phone(t), b2buatest.NewRTP(t)
			s.Register("102", callee)
			caller, callerRTP := s.Phone(t), b2buatest.NewRTP(t)

			msg, inv := caller.Invite("100", "500", nil, callerRTP.SDP())
			caller.Send(msg)
			ok := caller.WaitResponse(200)
			caller.Send(caller.InDialog("ACK", inv, ok, 1))
			pbxA := b2buatest.MediaAddr(t, ok.Body())
			callerRTP.WaitTone(600, 10, b2buatest.Wait) // the prompt
			cseq := 2
			if via == "rfc4733" {
				callerRTP.SendDigits(pbxA, "102#")
			} else {
				cseq = caller.SendInfoDigits(inv, ok, cseq, "102#")
			}
			logs.wait(t, "gathered\t102")

			bInv := callee.WaitRequest(sip.INVITE)
			if bInv.Recipient.User != "102" {
				t.Errorf("the B-leg goes to %s, want 102", bInv.Recipient.User)
			}
			callee.Respond(bInv, 200, "OK", calleeRTP.SDP())
			callee.WaitRequest(sip.ACK)
			stop := calleeRTP.SendTone(b2buatest.MediaAddr(t, bInv.Body()), 1000)
			defer stop()
			callerRTP.WaitTone(1000, 10, b2buatest.Wait) // the caller hears 102

			// A key press during the bridged call reaches on_dtmf.
			if via == "rfc4733" {
				callerRTP.SendDigits(pbxA, "5")
			} else {
				caller.Send(caller.InDialogWith("INFO", inv, ok, cseq, "Content-Type: application/dtmf-relay\r\n", "Signal=5\r\nDuration=160\r\n"))
				info := callee.WaitRequest(sip.INFO)
				callee.Respond(info, 200, "OK", "")
				caller.WaitResponse(200)
				cseq++
			}
			logs.wait(t, "key\t5\tcaller")
			stop()
			b2buatest.HangUp(t, caller, callee, inv, ok, cseq)
			s.WaitIdle()
		})
	}
}

func TestLuaAnswerWithoutRelayLetsTheScriptGoOn(t *testing.T) {
	l := newLua(t, ivrScript, dialplan.LuaConfig{})
	s := b2buatest.NewServer(t, b2bua.Config{}, l.Handle)
	caller := s.Phone(t)
	msg, inv := caller.Invite("100", "500", nil)
	caller.Send(msg)
	res := caller.WaitResponse(480) // the script's fallback, not a 500
	caller.AckFinal(inv, res)
	s.WaitIdle()
}

func TestLuaRecordStaysInTheDataDirectory(t *testing.T) {
	data := t.TempDir()
	s, logs := ivrServer(t, `
function route(call)
  call:answer()
  local r, err = call:record("../escape.wav", {max = 1})
  print("outside", tostring(r), err)
  r, err = call:record("/etc/passwd.wav", {max = 1})
  print("absolute", tostring(r), err)
  r = call:record("messages/101/msg.wav", {max = 1})
  print("recorded", r.path, r.seconds >= 0.9) -- the backstop may end it before a loaded phone sent 1 s
  call:play(r.path)
  call:hangup()
end`, dialplan.LuaConfig{DataDir: data})
	caller, rtp := s.Phone(t), b2buatest.NewRTP(t)
	msg, inv := caller.Invite("100", "500", nil, rtp.SDP())
	caller.Send(msg)
	ok := caller.WaitResponse(200)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	stop := rtp.SendTone(b2buatest.MediaAddr(t, ok.Body()), 700)
	logs.wait(t, "outside\tnil\tcall:record: \"../escape.wav\" is outside the data directory")
	logs.wait(t, "absolute\tnil\tcall:record: \"/etc/passwd.wav\" is outside the data directory")
	logs.wait(t, "recorded\t"+filepath.Join(data, "messages", "101", "msg.wav")+"\ttrue")
	stop()
	rtp.Reset()
	rtp.WaitTone(700, 10, b2buatest.Wait) // the recording played back
	caller.Respond(caller.WaitRequest(sip.BYE), 200, "OK", "")
	s.WaitIdle()
}

func TestLuaHangupBeforeAnswerDeclines(t *testing.T) {
	l := newLua(t, `function route(call) call:hangup() end`, dialplan.LuaConfig{})
	s := b2buatest.NewServer(t, b2bua.Config{}, l.Handle)
	caller := s.Phone(t)
	msg, inv := caller.Invite("100", "500", nil)
	caller.Send(msg)
	res := caller.WaitResponse(603) // as Asterisk's Hangup() on an unanswered call
	caller.AckFinal(inv, res)
	s.WaitIdle()
}

// call:record refuses every way out of the data directory and never replaces a file: a ".."
// that Clean would fold away, a symbolic link to another folder, a name that exists (a Call-ID a
// caller chose can name any file). The file that exists keeps its content.
func TestLuaRecordRefusesEscapesAndExistingFiles(t *testing.T) {
	data, elsewhere := t.TempDir(), t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(data, "out")); err != nil {
		t.Fatal(err)
	}
	existing := filepath.Join(data, "messages", "101", "taken.wav")
	if err := os.MkdirAll(filepath.Dir(existing), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(existing, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, logs := ivrServer(t, `
function route(call)
  call:answer()
  local r, err = call:record("messages/../../escape.wav", {max = 1})
  print("dotdot", tostring(r), err)
  r, err = call:record("messages/101/../x.wav", {max = 1})
  print("folded", tostring(r), err)
  r, err = call:record("out/x.wav", {max = 1})
  print("symlink", tostring(r), err ~= nil)
  r, err = call:record("messages/101/taken.wav", {max = 1})
  print("taken", tostring(r), err ~= nil)
  call:hangup()
end`, dialplan.LuaConfig{DataDir: data})
	caller, rtp := s.Phone(t), b2buatest.NewRTP(t)
	msg, inv := caller.Invite("100", "500", nil, rtp.SDP())
	caller.Send(msg)
	ok := caller.WaitResponse(200)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	stop := rtp.SendTone(b2buatest.MediaAddr(t, ok.Body()), 700)
	defer stop()
	logs.wait(t, "dotdot\tnil\tcall:record: \"messages/../../escape.wav\" is outside the data directory")
	logs.wait(t, "folded\tnil\tcall:record: \"messages/101/../x.wav\" is outside the data directory")
	logs.wait(t, "symlink\tnil\ttrue")
	logs.wait(t, "taken\tnil\ttrue")
	caller.Respond(caller.WaitRequest(sip.BYE), 200, "OK", "")
	s.WaitIdle()
	if got, err := os.ReadFile(existing); err != nil || string(got) != "keep me" {
		t.Errorf("the existing file now holds %q (%v)", got, err)
	}
	if files, _ := os.ReadDir(elsewhere); len(files) != 0 {
		t.Errorf("the folder the link points to got %d files", len(files))
	}
	if files, _ := os.ReadDir(filepath.Dir(existing)); len(files) != 1 {
		t.Errorf("%d files beside the existing one, want no leftovers", len(files)-1)
	}
}

// A menu loop that never checks for the caller's hang-up does not spin once the call is over:
// the first verb after the end returns at once, the next one stops the script.
// (The run-time clock is stopped while verbs wait, so the loop used to spin until MaxRunTime of
// its own Lua time, here a minute.)
func TestLuaVerbAfterTheEndStopsTheScript(t *testing.T) {
	s, logs := ivrServer(t, `
function route(call)
  call:answer()
  print("menu")
  while true do
    call:gather({max = 1, timeout = 1})
  end
end`, dialplan.LuaConfig{MaxRunTime: time.Minute})
	caller, rtp := s.Phone(t), b2buatest.NewRTP(t)
	inv, ok := answered(t, caller, rtp)
	logs.wait(t, "menu")
	caller.Send(caller.InDialog("BYE", inv, ok, 2))
	caller.WaitResponse(200)
	s.WaitIdle() // the route ended
}

// answered has caller call 500 with audio on rtp; the script answers.
func answered(t *testing.T, caller *b2buatest.Phone, rtp *b2buatest.RTP) (*sip.Request, *sip.Response) {
	t.Helper()
	msg, inv := caller.Invite("100", "500", nil, rtp.SDP())
	caller.Send(msg)
	ok := caller.WaitResponse(200)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	return inv, ok
}

// call:answer() for a caller whose offer has no G.711 reports 488 (the caller still waits, so the
// script can refuse it with that status), not 500.
func TestLuaAnswerReportsAnOfferWithoutG711(t *testing.T) {
	s, logs := ivrServer(t, `
function route(call)
  local a = call:answer()
  print("answer", a.answered, a.status)
  call:reject(a.status)
end`, dialplan.LuaConfig{})
	caller := s.Phone(t)
	g722 := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 9\r\na=rtpmap:9 G722/8000\r\n"
	msg, inv := caller.Invite("100", "500", nil, g722)
	caller.Send(msg)
	res := caller.WaitResponse(488)
	caller.AckFinal(inv, res)
	logs.wait(t, "answer\tfalse\t488")
	s.WaitIdle()
}

// gather's terminator is one key, in either case ("a" ends the input at the caller's A); anything
// else is a script error.
func TestLuaGatherTerminatorIsAKey(t *testing.T) {
	s, logs := ivrServer(t, `
function route(call)
  call:answer()
  print("gathered", call:gather({max = 8, timeout = 5, terminator = "a"}))
  print("bad terminator", pcall(call.gather, call, {terminator = "x"}))
  call:hangup()
end`, dialplan.LuaConfig{})
	caller, rtp := s.Phone(t), b2buatest.NewRTP(t)
	inv, ok := answered(t, caller, rtp)
	caller.SendInfoDigits(inv, ok, 2, "12A")
	logs.wait(t, "gathered\t12")
	logs.wait(t, "bad terminator\tfalse")
	caller.Respond(caller.WaitRequest(sip.BYE), 200, "OK", "")
	s.WaitIdle()
}
