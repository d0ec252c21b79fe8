package dialplan_test

import (
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
  print("recorded", r.path, r.seconds)
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
	logs.wait(t, "recorded\t"+filepath.Join(data, "messages", "101", "msg.wav")+"\t1")
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
