package b2bua_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
)

// responseTo waits for the response with CSeq cseq (method), answering any BYE on the way, and
// returns it, or fails the test.
func responseTo(t *testing.T, p *b2buatest.Phone, method sip.RequestMethod, cseq uint32) *sip.Response {
	t.Helper()
	return responsesTo(t, p, sip.CSeqHeader{MethodName: method, SeqNo: cseq})[0]
}

// responsesTo waits for the final answers to the requests named by their CSeqs, in whatever
// order they come (requests to a call that ended are not ordered any more), and returns them in
// the order asked.
func responsesTo(t *testing.T, p *b2buatest.Phone, want ...sip.CSeqHeader) []*sip.Response {
	t.Helper()
	got := map[sip.CSeqHeader]*sip.Response{}
	deadline := time.Now().Add(b2buatest.Wait)
	for len(got) < len(want) && time.Now().Before(deadline) {
		switch m := p.RecvMsg(time.Until(deadline)).(type) {
		case *sip.Response:
			if m.StatusCode >= 200 {
				got[sip.CSeqHeader{MethodName: m.CSeq().MethodName, SeqNo: m.CSeq().SeqNo}] = m
			}
		case *sip.Request:
			if m.Method == sip.BYE {
				p.Respond(m, 200, "OK", "")
			}
		}
	}
	out := make([]*sip.Response, len(want))
	for i, w := range want {
		if out[i] = got[w]; out[i] == nil {
			t.Fatalf("no answer to %s (CSeq %d) within %v", w.MethodName, w.SeqNo, b2buatest.Wait)
		}
	}
	return out
}

// Requests the caller sends while the call the PBX answered ends (the dialplan returns, or the
// caller's own BYE) reach no callee: they are answered (481 once the call is gone, 200 while the
// PBX still is the caller's end), never passed to a callee that does not exist (a nil-pointer
// panic before).
func TestApplicationRequestsWhileTheCallEnds(t *testing.T) {
	t.Run("reinvite then info as the dialplan ends", func(t *testing.T) {
		b2bua.SetArrivalWait(t, time.Minute) // a request holding the INFO back holds it for good
		release := make(chan struct{})
		s := appServer(t, func(ctx context.Context, c *b2bua.Call) error {
			if err := c.Answer(ctx); err != nil {
				return err
			}
			<-release
			return nil // the end of routing hangs the caller up
		})
		caller, rtp := s.Phone(t), b2buatest.NewRTP(t)
		inv, ok, _ := answeredByPBX(t, caller, rtp, "500")
		caller.Send(caller.InDialogWith("INVITE", inv, ok, 2, "Contact: <"+caller.Contact("100")+">\r\n", rtp.SDP()))
		caller.WaitResponse(200) // not ACKed
		caller.Send(caller.InDialogWith("INFO", inv, ok, 3, "Content-Type: application/dtmf-relay\r\n", "Signal=5\r\nDuration=160\r\n"))
		close(release)
		if res := responseTo(t, caller, sip.INFO, 3); res.StatusCode != 200 && res.StatusCode != 481 {
			t.Errorf("INFO answered %d, want 200 (taken by the PBX) or 481 (the call is gone)", res.StatusCode)
		}
		s.WaitIdle()
	})
	t.Run("bye then info", func(t *testing.T) {
		b2bua.SetArrivalWait(t, time.Minute)
		s := appServer(t, func(ctx context.Context, c *b2bua.Call) error {
			if err := c.Answer(ctx); err != nil {
				return err
			}
			_, err := c.Play(ctx, []string{"tone:beep"}, b2bua.PlayOptions{Loop: 400}) // until the call ends
			return err
		})
		caller, rtp := s.Phone(t), b2buatest.NewRTP(t)
		inv, ok, _ := answeredByPBX(t, caller, rtp, "500")
		caller.Send(caller.InDialog("BYE", inv, ok, 2))
		caller.Send(caller.InDialogWith("INFO", inv, ok, 3, "Content-Type: application/dtmf-relay\r\n", "Signal=5\r\nDuration=160\r\n"))
		caller.Send(caller.InDialog("UPDATE", inv, ok, 4))
		caller.Send(caller.InDialogWith("REFER", inv, ok, 5, "Refer-To: <sip:300@pbx.test>\r\n"))
		res := responsesTo(t, caller, sip.CSeqHeader{MethodName: sip.BYE, SeqNo: 2}, sip.CSeqHeader{MethodName: sip.INFO, SeqNo: 3},
			sip.CSeqHeader{MethodName: sip.UPDATE, SeqNo: 4}, sip.CSeqHeader{MethodName: sip.REFER, SeqNo: 5})
		if res[0].StatusCode != 200 {
			t.Errorf("BYE answered %d", res[0].StatusCode)
		}
		for _, r := range res[1:] {
			if r.StatusCode != 481 {
				t.Errorf("%s after the BYE answered %d, want 481", r.CSeq().MethodName, r.StatusCode)
			}
		}
		s.WaitIdle()
	})
}

// A re-INVITE the PBX answers itself does not hold the caller's later requests: its ACK and an
// INFO right after it are handled while the PBX is still the caller's end. (The re-INVITE held
// its turn until its ACK, which waited for that turn: the two waited for each other until the
// arrival wait gave up, here made long.)
func TestApplicationReinviteDoesNotHoldTheNextRequests(t *testing.T) {
	b2bua.SetArrivalWait(t, time.Minute)
	got := make(chan result[string], 1)
	s := appServer(t, func(ctx context.Context, c *b2bua.Call) error {
		if err := c.Answer(ctx); err != nil {
			return err
		}
		d, err := c.Gather(ctx, b2bua.GatherOptions{Max: 1, Timeout: 4 * b2buatest.Wait})
		got <- result[string]{d, err}
		return nil
	})
	caller, rtp := s.Phone(t), b2buatest.NewRTP(t)
	inv, ok, _ := answeredByPBX(t, caller, rtp, "500")
	moved := b2buatest.NewRTP(t)
	caller.Send(caller.InDialogWith("INVITE", inv, ok, 2, "Contact: <"+caller.Contact("100")+">\r\n", moved.SDP()))
	re := caller.WaitResponse(200)
	caller.Send(caller.InDialog("ACK", inv, re, 2))
	caller.Send(caller.InDialogWith("INFO", inv, ok, 3, "Content-Type: application/dtmf-relay\r\n", "Signal=7\r\nDuration=160\r\n"))
	if res := responseTo(t, caller, sip.INFO, 3); res.StatusCode != 200 {
		t.Errorf("INFO answered %d, want 200", res.StatusCode)
	}
	if d := waitResult(t, got); d != "7" {
		t.Errorf("gathered %q, want the INFO's 7", d)
	}
	caller.Respond(caller.WaitRequest(sip.BYE), 200, "OK", "")
	s.WaitIdle()
}

// pcmaPhone is a caller's RTP socket offering PCMA only; it keeps the payload types received.
type pcmaPhone struct {
	conn *net.UDPConn
}

func newPCMAPhone(t *testing.T) *pcmaPhone {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &pcmaPhone{conn: conn}
}

func (p *pcmaPhone) sdp(format, rtpmap string) string {
	port := strconv.Itoa(p.conn.LocalAddr().(*net.UDPAddr).Port)
	return "v=0\r\no=- " + port + " 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio " + port + " RTP/AVP " + format + "\r\na=rtpmap:" + format + " " + rtpmap + "\r\na=sendrecv\r\n"
}

// waitPayloadType reads RTP packets until n in a row have payload type pt, or fails the test
// (packets of another type before the first of pt may be the last ones sent before the switch).
func (p *pcmaPhone) waitPayloadType(t *testing.T, pt uint8, n int) {
	t.Helper()
	buf := make([]byte, 1500)
	p.conn.SetReadDeadline(time.Now().Add(b2buatest.Wait))
	var seen []uint8
	for run := 0; run < n; {
		k, err := p.conn.Read(buf)
		if err != nil {
			t.Fatalf("no %d packets of payload type %d in a row (got %v): %v", n, pt, seen, err)
		}
		var pkt rtp.Packet
		if pkt.Unmarshal(buf[:k]) != nil {
			continue
		}
		seen = append(seen, pkt.PayloadType)
		switch {
		case pkt.PayloadType == pt:
			run++
		case run > 0:
			t.Fatalf("payload type %d after %d packets of %d", pkt.PayloadType, run, pt)
		}
	}
}

// The caller's new offer while the PBX is its other end: one without G.711 is refused 488 (the
// PBX keeps playing where it did); one with PCMA only is answered PCMA and the PBX sends PCMA
// from then on, to the new address.
func TestApplicationReofferChangesCodec(t *testing.T) {
	release := make(chan struct{})
	s := appServer(t, func(ctx context.Context, c *b2bua.Call) error {
		if err := c.Answer(ctx); err != nil {
			return err
		}
		_, err := c.Play(ctx, []string{"tone:beep"}, b2bua.PlayOptions{Loop: 400})
		<-release
		return err
	})
	caller, first := s.Phone(t), b2buatest.NewRTP(t)
	inv, ok, _ := answeredByPBX(t, caller, first, "500")
	contact := "Contact: <" + caller.Contact("100") + ">\r\n"

	g722 := newPCMAPhone(t)
	caller.Send(caller.InDialogWith("INVITE", inv, ok, 2, contact, g722.sdp("9", "G722/8000")))
	if res := responseTo(t, caller, sip.INVITE, 2); res.StatusCode != 488 {
		t.Fatalf("re-INVITE offering G.722 only answered %d, want 488", res.StatusCode)
	}
	caller.Send(caller.InDialog("ACK", inv, ok, 2))
	first.Reset()
	first.WaitAudio(800, b2buatest.Wait) // still played to, in PCMU, where it was

	alaw := newPCMAPhone(t)
	caller.Send(caller.InDialogWith("INVITE", inv, ok, 3, contact, alaw.sdp("8", "PCMA/8000")))
	re := responseTo(t, caller, sip.INVITE, 3)
	if re.StatusCode != 200 || !strings.Contains(string(re.Body()), "RTP/AVP 8") {
		t.Fatalf("re-INVITE offering PCMA answered %d:\n%s", re.StatusCode, re.Body())
	}
	caller.Send(caller.InDialog("ACK", inv, re, 3))
	alaw.waitPayloadType(t, 8, 20)
	caller.Send(caller.InDialog("BYE", inv, ok, 4))
	caller.WaitResponse(200)
	close(release)
	s.WaitIdle()
}

// Answer after the caller cancelled (here called once the CANCEL ended routing's context, with a
// context of its own, as a Go embedder answering from another goroutine might) does not answer:
// the caller's INVITE got 487, the record says cancelled.
func TestAnswerAfterCancel(t *testing.T) {
	answered := make(chan error, 1)
	s := appServer(t, func(ctx context.Context, c *b2bua.Call) error {
		<-ctx.Done() // the caller's CANCEL
		answered <- c.Answer(context.Background())
		return nil
	})
	caller, rtp := s.Phone(t), b2buatest.NewRTP(t)
	msg, inv := caller.Invite("100", "500", nil, rtp.SDP())
	caller.Send(msg)
	caller.WaitResponse(100)
	caller.Send(b2buatest.Cancel(inv))
	res := responseTo(t, caller, sip.INVITE, inv.CSeq().SeqNo)
	if res.StatusCode != 487 {
		t.Fatalf("INVITE answered %d after its CANCEL, want 487", res.StatusCode)
	}
	caller.AckFinal(inv, res)
	select {
	case err := <-answered:
		if !errors.Is(err, b2bua.ErrDecided) {
			t.Errorf("Answer after the CANCEL: %v, want ErrDecided", err)
		}
	case <-time.After(b2buatest.Wait):
		t.Fatal("Answer did not return")
	}
	rec := s.Record(inv.CallID().Value())
	if !rec.Answer.IsZero() || rec.Status != 487 {
		t.Errorf("record: answered %v, status %d; want not answered, 487", rec.Answer, rec.Status)
	}
	s.WaitIdle()
}

// An INFO in a key press format that names no key is a bad request (400); one in another format
// is not understood (415).
func TestApplicationInfoWithoutKey(t *testing.T) {
	s := appServer(t, func(ctx context.Context, c *b2bua.Call) error {
		if err := c.Answer(ctx); err != nil {
			return err
		}
		_, err := c.Play(ctx, []string{"tone:beep"}, b2bua.PlayOptions{Loop: 400}) // until the call ends
		return err
	})
	caller, rtp := s.Phone(t), b2buatest.NewRTP(t)
	inv, ok, _ := answeredByPBX(t, caller, rtp, "500")
	caller.Send(caller.InDialogWith("INFO", inv, ok, 2, "Content-Type: application/dtmf-relay\r\n", "Signal=Z\r\nDuration=160\r\n"))
	if res := responseTo(t, caller, sip.INFO, 2); res.StatusCode != 400 {
		t.Errorf("INFO dtmf-relay with Signal=Z answered %d, want 400", res.StatusCode)
	}
	caller.Send(caller.InDialogWith("INFO", inv, ok, 3, "Content-Type: application/x-unknown\r\n", "hello"))
	if res := responseTo(t, caller, sip.INFO, 3); res.StatusCode != 415 {
		t.Errorf("INFO application/x-unknown answered %d, want 415", res.StatusCode)
	}
	caller.Send(caller.InDialog("BYE", inv, ok, 4))
	caller.WaitResponse(200)
	s.WaitIdle()
}
