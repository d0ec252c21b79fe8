package b2bua_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/internal/audiotest"
	"github.com/pbxkit/pbxkit/internal/callmedia"
	"github.com/pbxkit/pbxkit/media"
)

// appServer is a server with the media relay whose calls are routed by route.
func appServer(t *testing.T, route b2bua.RouteFunc) *b2buatest.Server {
	t.Helper()
	return b2buatest.NewServer(t, b2bua.Config{Media: b2buatest.MediaRelay(t, 8)}, route)
}

// answeredByPBX has caller (as 100, audio on rtp) call number; the PBX answers itself. It returns
// the INVITE, the 200 (ACKed) and where the PBX wants the caller's audio.
func answeredByPBX(t *testing.T, caller *b2buatest.Phone, rtp *b2buatest.RTP, number string) (*sip.Request, *sip.Response, netip.AddrPort) {
	t.Helper()
	msg, inv := caller.Invite("100", number, nil, rtp.SDP())
	caller.Send(msg)
	ok := caller.WaitResponse(200)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	if !strings.Contains(string(ok.Body()), "m=audio ") || !strings.Contains(string(ok.Body()), "RTP/AVP 0 101") {
		t.Fatalf("the PBX's answer names PCMU and telephone-event:\n%s", ok.Body())
	}
	return inv, ok, b2buatest.MediaAddr(t, ok.Body())
}

// toneWAV writes a WAV file of a sine at freq lasting seconds.
func toneWAV(t *testing.T, freq, seconds float64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "prompt.wav")
	if err := callmedia.WriteWAVFile(path, audiotest.Tone(freq, 8000, 0, int(seconds*8000))); err != nil {
		t.Fatal(err)
	}
	return path
}

// result carries what a route found out to the test.
type result[T any] struct {
	v   T
	err error
}

func waitResult[T any](t *testing.T, ch <-chan result[T]) T {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("route: %v", r.err)
		}
		return r.v
	case <-time.After(3 * b2buatest.Wait):
		t.Fatal("the route did not finish")
	}
	var zero T
	return zero
}

func TestAnswerPlaysWAVPaced(t *testing.T) {
	prompt := toneWAV(t, 600, 0.5)
	played := make(chan result[bool], 1)
	s := appServer(t, func(ctx context.Context, c *b2bua.Call) error {
		if err := c.Answer(ctx); err != nil {
			return err
		}
		keyed, err := c.Play(ctx, []string{prompt}, b2bua.PlayOptions{})
		played <- result[bool]{keyed, err}
		return nil // the end of routing hangs the caller up
	})
	caller, rtp := s.Phone(t), b2buatest.NewRTP(t)
	inv, _, _ := answeredByPBX(t, caller, rtp, "500")

	if keyed := waitResult(t, played); keyed {
		t.Error("play says it was interrupted")
	}
	bye := caller.WaitRequest(sip.BYE)
	caller.Respond(bye, 200, "OK", "")
	audio, arrived := rtp.Received()
	if len(audio) < 4000 {
		t.Fatalf("received %d samples, want the whole prompt (4000)", len(audio))
	}
	var prompt4k []int16
	for i := 0; i+1600 <= len(audio); i += 160 {
		if audiotest.Share(audio[i:i+1600], 600) > 0.8 {
			prompt4k = audio[i : i+1600]
			break
		}
	}
	if prompt4k == nil {
		t.Fatal("the caller never heard the prompt's 600 Hz")
	}
	// In 20 ms frames: a packet of 160 samples each, at least the prompt's 25. (The pacing of
	// the frames is play's, which media's TestToneIsPacedRTP checks; a time bound here would fail
	// on a loaded machine, where a late sender catches up.)
	if len(audio) != 160*len(arrived) || len(arrived) < 25 {
		t.Errorf("%d samples in %d packets: want 160 a packet, at least 25 packets", len(audio), len(arrived))
	}
	rec := s.Record(inv.CallID().Value())
	if rec.Answer.IsZero() || rec.Callee != b2bua.PBXParty || rec.Status != 200 || rec.HangupBy != "pbx" {
		t.Errorf("record: answer %v, callee %q, status %d, hangup by %q; want answered by %q, 200, pbx",
			rec.Answer, rec.Callee, rec.Status, rec.HangupBy, b2bua.PBXParty)
	}
	s.WaitIdle()
}

func TestGatherDigits(t *testing.T) {
	for _, via := range []string{"rfc4733", "info"} {
		t.Run(via, func(t *testing.T) {
			got := make(chan result[string], 1)
			s := appServer(t, func(ctx context.Context, c *b2bua.Call) error {
				if err := c.Answer(ctx); err != nil {
					return err
				}
				d, err := c.Gather(ctx, b2bua.GatherOptions{Max: 4, Timeout: 5 * time.Second, Terminator: "#"})
				got <- result[string]{d, err}
				// A second gather with nothing pressed times out empty.
				d, err = c.Gather(ctx, b2bua.GatherOptions{Timeout: 200 * time.Millisecond})
				got <- result[string]{d, err}
				return nil
			})
			caller, rtp := s.Phone(t), b2buatest.NewRTP(t)
			inv, ok, pbx := answeredByPBX(t, caller, rtp, "500")
			if via == "rfc4733" {
				rtp.SendDigits(pbx, "102#")
			} else {
				caller.SendInfoDigits(inv, ok, 2, "102#")
			}
			if d := waitResult(t, got); d != "102" {
				t.Errorf("gathered %q, want 102", d)
			}
			if d := waitResult(t, got); d != "" {
				t.Errorf("second gather %q, want \"\" (timeout)", d)
			}
			caller.Respond(caller.WaitRequest(sip.BYE), 200, "OK", "")
			var sources []string
			for _, ev := range s.Events() {
				if ev.Kind == b2bua.CallDTMF {
					sources = append(sources, ev.Digit+"/"+ev.Source)
				}
			}
			if len(sources) != 4 || sources[0] != "1/"+via {
				t.Errorf("key press events %v, want 4 from %s", sources, via)
			}
			s.WaitIdle()
		})
	}
}

func TestPlayInterruptedKeepsTheKey(t *testing.T) {
	got := make(chan result[string], 1)
	s := appServer(t, func(ctx context.Context, c *b2bua.Call) error {
		if err := c.Answer(ctx); err != nil {
			return err
		}
		keyed, err := c.Play(ctx, []string{"tone:ringback"}, b2bua.PlayOptions{Loop: 20, Interrupt: true})
		if err == nil && !keyed {
			err = errors.New("play was not interrupted")
		}
		d, gerr := c.Gather(ctx, b2bua.GatherOptions{Max: 1})
		got <- result[string]{d, errors.Join(err, gerr)}
		return nil
	})
	caller, rtp := s.Phone(t), b2buatest.NewRTP(t)
	_, _, pbx := answeredByPBX(t, caller, rtp, "500")
	rtp.WaitTone(425, 10, b2buatest.Wait) // the ringback plays
	rtp.SendDigits(pbx, "7")
	if d := waitResult(t, got); d != "7" {
		t.Errorf("gathered %q after the interrupting key, want 7", d)
	}
	caller.Respond(caller.WaitRequest(sip.BYE), 200, "OK", "")
	s.WaitIdle()
}

// readWAV reads a recording back.
func readWAV(t *testing.T, path string) []int16 {
	t.Helper()
	src, err := media.LoadSamples(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []int16
	frame := make([]int16, 160)
	for src.Samples(frame) {
		out = append(out, frame...)
	}
	return out
}

func TestRecordCaller(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name  string
		opts  b2bua.RecordOptions
		end   string // how the phone ends it: "max", "hash", "silence", "quiet", "hangup"
		least float64
	}{
		// At least 0.9 s: the backstop may end it by the clock before a loaded machine's phone
		// sent a whole second.
		{"max", b2bua.RecordOptions{Max: time.Second}, "max", 0.9},
		{"hash key", b2bua.RecordOptions{Max: time.Minute, Beep: true}, "hash", 0.5},
		{"silence", b2bua.RecordOptions{Max: time.Minute, Silence: time.Second}, "silence", 1},
		// A phone with voice activity detection sends nothing while the caller is silent.
		{"silence sent as nothing", b2bua.RecordOptions{Max: time.Minute, Silence: time.Second}, "quiet", 0.5},
		{"caller hangs up", b2bua.RecordOptions{Max: time.Minute}, "hangup", 0.5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".wav")
			got := make(chan result[b2bua.Recording], 1)
			s := appServer(t, func(ctx context.Context, c *b2bua.Call) error {
				if err := c.Answer(ctx); err != nil {
					return err
				}
				r, err := c.RecordCaller(ctx, path, tc.opts)
				got <- result[b2bua.Recording]{r, err}
				return nil
			})
			caller, rtp := s.Phone(t), b2buatest.NewRTP(t)
			inv, ok, pbx := answeredByPBX(t, caller, rtp, "500")
			if tc.opts.Beep {
				rtp.WaitTone(1000, 5, b2buatest.Wait)
			}
			stop := rtp.SendTone(pbx, 700)
			switch tc.end {
			case "hash", "hangup", "silence", "quiet":
				// Speak for a while (the recording's own clock: audio that reached the PBX).
				for waited := time.Now(); time.Since(waited) < 1200*time.Millisecond; {
					time.Sleep(50 * time.Millisecond)
				}
				stop()
			}
			switch tc.end {
			case "hash":
				caller.SendInfoDigits(inv, ok, 2, "#")
			case "silence":
				stop = rtp.SendTone(pbx, 0) // silence, sent as audio
			case "hangup":
				caller.Send(caller.InDialog("BYE", inv, ok, 2))
				caller.WaitResponse(200)
			}
			r := waitResult(t, got)
			stop()
			if r.Path != path || r.Seconds < tc.least {
				t.Errorf("recording %+v, want %s and at least %.1f s", r, path, tc.least)
			}
			pcm := readWAV(t, path)
			if float64(len(pcm)) < r.Seconds*8000-160 {
				t.Errorf("the file holds %d samples for %.2f s", len(pcm), r.Seconds)
			}
			if len(pcm) < 3600 {
				t.Fatalf("the file holds %d samples, want at least 3600", len(pcm))
			}
			if share := audiotest.Share(pcm[400:3600], 700); share < 0.8 {
				t.Errorf("share of the caller's 700 Hz in the recording: %.2f", share)
			}
			if tc.end != "hangup" {
				caller.Respond(caller.WaitRequest(sip.BYE), 200, "OK", "")
			}
			if _, err := os.Stat(path); err != nil {
				t.Error(err)
			}
			s.WaitIdle()
		})
	}
}

func TestHangupAfterAnswer(t *testing.T) {
	s := appServer(t, func(ctx context.Context, c *b2bua.Call) error {
		if err := c.Answer(ctx); err != nil {
			return err
		}
		c.Hangup("ivr done")
		if _, err := c.Play(ctx, []string{"tone:beep"}, b2bua.PlayOptions{}); !errors.Is(err, b2bua.ErrDecided) {
			return errors.New("play after hangup did not say the call ended")
		}
		return nil
	})
	caller, rtp := s.Phone(t), b2buatest.NewRTP(t)
	inv, _, _ := answeredByPBX(t, caller, rtp, "500")
	caller.Respond(caller.WaitRequest(sip.BYE), 200, "OK", "")
	rec := s.Record(inv.CallID().Value())
	if rec.Reason != "ivr done" || rec.Answer.IsZero() || rec.Disposition() != "answered" {
		t.Errorf("record: reason %q, answered %v, disposition %q", rec.Reason, !rec.Answer.IsZero(), rec.Disposition())
	}
	s.WaitIdle()
}

func TestAnswerWithoutRelay(t *testing.T) {
	s := b2buatest.NewServer(t, b2bua.Config{}, func(ctx context.Context, c *b2bua.Call) error {
		if err := c.Answer(ctx); !errors.Is(err, b2bua.ErrNoRelay) {
			return errors.New("answer without relay did not fail with ErrNoRelay")
		}
		return c.Reject(603, "") // what call:hangup() does before an answer
	})
	caller := s.Phone(t)
	msg, inv := caller.Invite("100", "500", nil)
	caller.Send(msg)
	res := caller.WaitResponse(603)
	caller.AckFinal(inv, res)
	s.WaitIdle()
}

// calleeWithRTP is extension 200 on a phone with audio.
func calleeWithRTP(t *testing.T, s *b2buatest.Server) (*b2buatest.Phone, *b2buatest.RTP) {
	p, rtp := s.Phone(t), b2buatest.NewRTP(t)
	s.Register("200", p)
	return p, rtp
}

func TestConnectAfterAnswer(t *testing.T) {
	connected := make(chan result[b2bua.Result], 1)
	s := appServer(t, func(ctx context.Context, c *b2bua.Call) error {
		if err := c.Answer(ctx); err != nil {
			return err
		}
		r, err := c.Connect(ctx, []string{"200"}, b2bua.ConnectOptions{})
		connected <- result[b2bua.Result]{r, err}
		return nil
	})
	callee, calleeRTP := calleeWithRTP(t, s)
	caller, callerRTP := s.Phone(t), b2buatest.NewRTP(t)
	inv, ok, pbxA := answeredByPBX(t, caller, callerRTP, "500")

	bInv := callee.WaitRequest(sip.INVITE)
	// The callee is offered the codec the caller and the PBX agreed on, from the port facing it.
	if body := string(bInv.Body()); !strings.Contains(body, "RTP/AVP 0 101\r\n") {
		t.Errorf("the callee's offer is not narrowed to PCMU and telephone-event:\n%s", body)
	}
	callee.Respond(bInv, 180, "Ringing", "")
	callerRTP.WaitTone(425, 10, b2buatest.Wait) // ringback from the PBX meanwhile
	callee.Respond(bInv, 200, "OK", calleeRTP.SDP())
	callee.WaitRequest(sip.ACK)
	if r := waitResult(t, connected); !r.Answered {
		t.Fatalf("connect: %+v", r)
	}
	pbxB := b2buatest.MediaAddr(t, bInv.Body())
	stopB := calleeRTP.SendTone(pbxB, 1000)
	defer stopB()
	callerRTP.WaitTone(1000, 10, b2buatest.Wait) // the caller hears the callee, same port, no new offer
	stopA := callerRTP.SendTone(pbxA, 700)
	defer stopA()
	calleeRTP.WaitTone(700, 10, b2buatest.Wait)
	if m := caller.RecvMsg(200 * time.Millisecond); m != nil {
		if req, isReq := m.(*sip.Request); isReq && req.Method == sip.INVITE {
			t.Error("the caller was re-INVITEd although the callee took the agreed codec")
		}
	}
	stopA()
	stopB()
	hangUp(t, s, caller, callee, inv, ok, 2)
	rec := s.Record(inv.CallID().Value())
	if rec.Callee != "200" || len(rec.Segments) != 2 || rec.Segments[0].Callee != b2bua.PBXParty {
		t.Errorf("record: callee %q, segments %+v; want 200 after the pbx", rec.Callee, rec.Segments)
	}
}

func TestConnectAfterAnswerCalleeFails(t *testing.T) {
	connected := make(chan result[b2bua.Result], 1)
	s := appServer(t, func(ctx context.Context, c *b2bua.Call) error {
		if err := c.Answer(ctx); err != nil {
			return err
		}
		r, err := c.Connect(ctx, []string{"200"}, b2bua.ConnectOptions{})
		connected <- result[b2bua.Result]{r, err}
		if err == nil {
			// The caller is still the PBX's: it hears the busy tone.
			_, err = c.Play(ctx, []string{"tone:busy"}, b2bua.PlayOptions{Loop: 3})
		}
		return err
	})
	callee, _ := calleeWithRTP(t, s)
	caller, callerRTP := s.Phone(t), b2buatest.NewRTP(t)
	answeredByPBX(t, caller, callerRTP, "500")
	bInv := callee.WaitRequest(sip.INVITE)
	callee.Respond(bInv, 486, "Busy Here", "")
	if r := waitResult(t, connected); r.Answered || r.Status != 486 {
		t.Errorf("connect to a busy callee: %+v, want 486", r)
	}
	callerRTP.Reset()
	callerRTP.WaitTone(425, 10, b2buatest.Wait)
	caller.Respond(caller.WaitRequest(sip.BYE), 200, "OK", "")
	s.WaitIdle()
}

func TestConnectAfterAnswerOtherCodecReoffers(t *testing.T) {
	connected := make(chan result[b2bua.Result], 1)
	s := appServer(t, func(ctx context.Context, c *b2bua.Call) error {
		if err := c.Answer(ctx); err != nil {
			return err
		}
		r, err := c.Connect(ctx, []string{"200"}, b2bua.ConnectOptions{})
		connected <- result[b2bua.Result]{r, err}
		return nil
	})
	callee, _ := calleeWithRTP(t, s)
	caller, callerRTP := s.Phone(t), b2buatest.NewRTP(t)
	msg, inv := caller.Invite("100", "500", nil, strings.Replace(callerRTP.SDP(), "RTP/AVP 0 101", "RTP/AVP 0 8 101", 1))
	caller.Send(msg)
	ok := caller.WaitResponse(200)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	bInv := callee.WaitRequest(sip.INVITE)
	// A callee that answers with a codec it was not offered (PCMA): the caller must switch too.
	callee.Respond(bInv, 200, "OK", strings.Replace(b2buatest.CalleeSDP, "RTP/AVP 0", "RTP/AVP 8", 1))
	callee.WaitRequest(sip.ACK)
	re := caller.WaitRequest(sip.INVITE)
	if !strings.Contains(string(re.Body()), "RTP/AVP 8") {
		t.Errorf("re-offer to the caller:\n%s", re.Body())
	}
	reOK := sip.NewResponseFromRequest(re, 200, "OK", []byte(strings.Replace(callerRTP.SDP(), "RTP/AVP 0 101", "RTP/AVP 8", 1)))
	reOK.AppendHeader(sip.NewHeader("Contact", "<"+caller.Contact("100")+">"))
	reOK.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	caller.Send(reOK.String())
	caller.WaitRequest(sip.ACK)
	if r := waitResult(t, connected); !r.Answered {
		t.Fatalf("connect: %+v", r)
	}
	hangUp(t, s, caller, callee, inv, ok, 2)
}

func TestOnDTMFWhileBridged(t *testing.T) {
	keys := make(chan string, 8)
	s := appServer(t, func(ctx context.Context, c *b2bua.Call) error {
		c.OnDTMF(func(side, digit string) { keys <- side + ":" + digit })
		_, err := c.Connect(ctx, []string{"200"}, b2bua.ConnectOptions{})
		return err
	})
	callee, calleeRTP := calleeWithRTP(t, s)
	caller, callerRTP := s.Phone(t), b2buatest.NewRTP(t)
	msg, inv := caller.Invite("100", "200", nil, callerRTP.SDP())
	caller.Send(msg)
	bInv := callee.WaitRequest(sip.INVITE)
	callee.Respond(bInv, 200, "OK", calleeRTP.SDP())
	ok := caller.WaitResponse(200)
	callee.WaitRequest(sip.ACK)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))

	callerRTP.SendDigits(b2buatest.MediaAddr(t, ok.Body()), "5")
	// INFO passes on to the callee and counts as a key press too.
	caller.Send(caller.InDialogWith("INFO", inv, ok, 2, "Content-Type: application/dtmf-relay\r\n", "Signal=9\r\nDuration=160\r\n"))
	info := callee.WaitRequest(sip.INFO)
	if !strings.Contains(string(info.Body()), "Signal=9") {
		t.Errorf("INFO passed on with %q", info.Body())
	}
	callee.Respond(info, 200, "OK", "")
	caller.WaitResponse(200)
	for _, want := range []string{"caller:5", "caller:9"} {
		select {
		case got := <-keys:
			if got != want {
				t.Errorf("key %q, want %q", got, want)
			}
		case <-time.After(b2buatest.Wait):
			t.Fatalf("no key %s", want)
		}
	}
	hangUp(t, s, caller, callee, inv, ok, 3)
}

// TestApplicationAnswersTheCallersRequests: while the PBX is the caller's other end it answers
// the caller's in-dialog requests itself: a re-INVITE with a new offer (the PBX's audio then goes
// to the new address), an UPDATE without one (200 without SDP), an unknown INFO (415), a REFER
// (501).
func TestApplicationAnswersTheCallersRequests(t *testing.T) {
	release := make(chan struct{})
	s := appServer(t, func(ctx context.Context, c *b2bua.Call) error {
		if err := c.Answer(ctx); err != nil {
			return err
		}
		_, err := c.Play(ctx, []string{"tone:beep"}, b2bua.PlayOptions{Loop: 400})
		<-release
		return err
	})
	defer close(release)
	caller, rtp := s.Phone(t), b2buatest.NewRTP(t)
	inv, ok, _ := answeredByPBX(t, caller, rtp, "500")
	moved := b2buatest.NewRTP(t)
	caller.Send(caller.InDialogWith("INVITE", inv, ok, 2, "Contact: <"+caller.Contact("100")+">\r\n", moved.SDP()))
	re := caller.WaitResponse(200)
	if !strings.Contains(string(re.Body()), "RTP/AVP 0 101") {
		t.Errorf("re-INVITE answered with:\n%s", re.Body())
	}
	caller.Send(caller.InDialog("ACK", inv, re, 2))
	moved.WaitTone(1000, 5, b2buatest.Wait) // the beeps follow the caller to its new port

	caller.Send(caller.InDialog("UPDATE", inv, ok, 3))
	if up := caller.WaitResponse(200); len(up.Body()) != 0 {
		t.Errorf("UPDATE without offer answered with a body:\n%s", up.Body())
	}
	caller.Send(caller.InDialogWith("INFO", inv, ok, 4, "Content-Type: application/x-unknown\r\n", "hello"))
	caller.WaitResponse(415)
	caller.Send(caller.InDialogWith("REFER", inv, ok, 5, "Refer-To: <sip:300@pbx.test>\r\n"))
	caller.WaitResponse(501)
	caller.Send(caller.InDialog("BYE", inv, ok, 6))
	caller.WaitResponse(200)
	select {
	case release <- struct{}{}:
	case <-time.After(3 * b2buatest.Wait):
		t.Fatal("the route did not reach its end")
	}
	s.WaitIdle()
}
