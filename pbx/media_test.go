package pbx_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/zaf/g711"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/dialplan"
	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// rtpPhone is a phone's RTP socket.
type rtpPhone struct {
	t    *testing.T
	conn *net.UDPConn
}

func newRTPPhone(t *testing.T) *rtpPhone {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rtpPhone{t: t, conn: c}
}

func (p *rtpPhone) port() int { return p.conn.LocalAddr().(*net.UDPAddr).Port }

func (p *rtpPhone) sdp(extra string) string {
	return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n%s", p.port(), extra)
}

func (p *rtpPhone) Send(port int, seq uint16, payload string) {
	p.sendTo(net.IPv4(127, 0, 0, 1), port, seq, payload)
}

// sendTo sends an RTP packet to a PBX whose relay is on ip.
func (p *rtpPhone) sendTo(ip net.IP, port int, seq uint16, payload string) {
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: 7}, Payload: []byte(payload)}
	b, _ := pkt.Marshal()
	p.conn.WriteToUDP(b, &net.UDPAddr{IP: ip, Port: port})
}

func (p *rtpPhone) recv() (string, int) {
	buf := make([]byte, 1500)
	p.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, from, err := p.conn.ReadFromUDP(buf)
	if err != nil {
		return "", 0
	}
	var pkt rtp.Packet
	if pkt.Unmarshal(buf[:n]) != nil {
		return "junk", from.Port
	}
	return string(pkt.Payload), from.Port
}

// sdpPort returns the port of the m=audio line of an SDP body.
func sdpPort(t *testing.T, body []byte) int {
	t.Helper()
	for _, line := range strings.Split(string(body), "\r\n") {
		var port int
		if _, err := fmt.Sscanf(line, "m=audio %d", &port); err == nil {
			return port
		}
	}
	t.Fatalf("no m=audio in %q", body)
	return 0
}

// mediaCall sets up an answered call through the relay, the caller offering aSDP and the callee
// answering bSDP, and returns the PBX's ports facing the caller (pa) and the callee (pb).
func mediaCall(t *testing.T, caller, callee *uaClient, aSDP, bSDP string) (inv *sip.Request, ok *sip.Response, pa, pb int) {
	t.Helper()
	msg, inv := inviteWith(caller, aSDP)
	caller.Send(msg)
	bInv := callee.WaitRequest(sip.INVITE)
	pb = sdpPort(t, bInv.Body())
	callee.Respond(bInv, 200, "OK", bSDP)
	ok = caller.WaitResponse(200)
	pa = sdpPort(t, ok.Body())
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	return inv, ok, pa, pb
}

// audioBothWays sends one RTP packet each way, a (at the caller) to the PBX's port pa and b (at
// the callee) to pb, and checks that each arrives at the other side, from the PBX's port facing it.
func audioBothWays(t *testing.T, a, b *rtpPhone, pa, pb int) {
	t.Helper()
	a.Send(pa, 1, "to callee")
	if got, from := b.recv(); got != "to callee" || from != pb {
		t.Fatalf("callee got %q from %d, want from the PBX's %d", got, from, pb)
	}
	b.Send(pb, 1, "to caller")
	if got, from := a.recv(); got != "to caller" || from != pa {
		t.Fatalf("caller got %q from %d, want from the PBX's %d", got, from, pa)
	}
}

func mediaPBX(t *testing.T, cfg pbx.Config) (*testPBX, *uaClient, *uaClient) {
	t.Helper()
	lo := freeEvenRange(t, 8)
	cfg.RTPPortMin, cfg.RTPPortMax = lo, lo+7
	tp, caller, callees := callPBX(t, cfg, 1)
	return tp, caller, callees[0]
}

func freeEvenRange(t *testing.T, n int) int {
	t.Helper()
	// Below the kernel's ephemeral range (32768-60999 by default), and apart from the media
	// package's tests (21000 up), which may run at the same time.
	for base := 26000; base < 32000; base += 64 {
		ok := true
		for p := base; p < base+n && ok; p++ {
			c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
			if err != nil {
				ok = false
				continue
			}
			c.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

func inviteWith(c *uaClient, body string) (string, *sip.Request) {
	return c.Invite("100", "200", nil, body)
}

func TestMediaRelayedBothWays(t *testing.T) {
	tp, caller, callee := mediaPBX(t, pbx.Config{})
	a, b := newRTPPhone(t), newRTPPhone(t)
	msg, inv := inviteWith(caller, a.sdp(""))
	caller.Send(msg)
	bInv := callee.WaitRequest(sip.INVITE)
	pb := sdpPort(t, bInv.Body())
	if pb == a.port() || strings.Contains(string(bInv.Body()), fmt.Sprint(a.port())) {
		t.Fatalf("the callee sees the caller's RTP port:\n%s", bInv.Body())
	}
	if free, used := tp.MediaPorts(); used != 2 || free != 2 {
		t.Fatalf("ports free %d used %d during the call, want 2 and 2", free, used)
	}
	callee.Respond(bInv, 200, "OK", b.sdp(""))
	ok := caller.WaitResponse(200)
	pa := sdpPort(t, ok.Body())
	if pa == b.port() || pa == pb {
		t.Fatalf("the caller's answer names port %d (callee %d, PBX facing callee %d)", pa, b.port(), pb)
	}
	caller.Send(caller.InDialog("ACK", inv, ok, 1))

	audioBothWays(t, a, b, pa, pb)

	hangUp(t, tp, caller, callee, inv, ok, 2)
	if free, used := tp.MediaPorts(); used != 0 || free != 4 {
		t.Fatalf("ports free %d used %d after the call, want 4 and 0", free, used)
	}
	cdr := lastCDR(t, tp, inv.CallID().Value())
	if cdr.ALeg.Packets != 1 || cdr.BLeg.Packets != 1 || cdr.ALeg.Bytes != 21 {
		t.Fatalf("CDR media stats %+v %+v", cdr.ALeg, cdr.BLeg)
	}
}

func TestMediaRefusals(t *testing.T) {
	tp, caller, callee := mediaPBX(t, pbx.Config{})
	a := newRTPPhone(t)
	for name, tc := range map[string]struct {
		body string
		want int
	}{
		"malformed":   {"v=0\r\nthis is not sdp\r\n", 400},
		"no codec":    {"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n", 488},
		"only events": {"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 101\r\na=rtpmap:101 telephone-event/8000\r\n", 488},
	} {
		t.Run(name, func(t *testing.T) {
			msg, inv := inviteWith(caller, tc.body)
			caller.Send(msg)
			if res := final(awaitFinal(t, caller, inv, 5*time.Second)); res.StatusCode != tc.want {
				t.Fatalf("got %d, want %d", res.StatusCode, tc.want)
			}
		})
	}
	// Exhaustion: two calls ringing hold all four pairs; the third gets 503. The refused calls
	// above release their pairs just after their final answer: wait for that first.
	deadline := time.Now().Add(3 * time.Second)
	for free, _ := tp.MediaPorts(); free != 4; free, _ = tp.MediaPorts() {
		if time.Now().After(deadline) {
			t.Fatalf("%d pairs free after the refused calls, want 4", free)
		}
		time.Sleep(10 * time.Millisecond)
	}
	seen := map[string]bool{}
	for range 2 {
		msg, _ := inviteWith(caller, a.sdp(""))
		caller.Send(msg)
		b := callee.WaitRequest(sip.INVITE)
		callee.Respond(b, 180, "Ringing", "") // no retransmission of this INVITE to mistake for the next
		if seen[b.CallID().Value()] {
			t.Fatal("the same B-leg INVITE twice")
		}
		seen[b.CallID().Value()] = true
	}
	msg, inv := inviteWith(caller, a.sdp(""))
	caller.Send(msg)
	if res := final(awaitFinal(t, caller, inv, 5*time.Second)); res.StatusCode != 503 {
		t.Fatalf("with every port pair in use: got %d, want 503", res.StatusCode)
	}
}

func TestMediaTimeoutHangsUp(t *testing.T) {
	tp, caller, callee := mediaPBX(t, pbx.Config{MediaTimeout: 300 * time.Millisecond})
	a, b := newRTPPhone(t), newRTPPhone(t)
	inv, _, _, _ := mediaCall(t, caller, callee, a.sdp(""), b.sdp(""))
	// No RTP at all: both sides get BYE.
	byeA := caller.WaitRequest(sip.BYE)
	caller.Respond(byeA, 200, "OK", "")
	byeB := callee.WaitRequest(sip.BYE)
	callee.Respond(byeB, 200, "OK", "")
	waitIdle(t, tp)
	if cdr := lastCDR(t, tp, inv.CallID().Value()); cdr.Reason != "media timeout: both silent" || cdr.HangupBy != "pbx" {
		t.Fatalf("CDR %+v", cdr)
	}
	if cdr := lastCDR(t, tp, inv.CallID().Value()); cdr.Disposition != store.Answered {
		t.Fatalf("CDR %+v", cdr)
	}
}

// A callee that dies mid-call (the caller still talking) ends the call: both sides get BYE and
// the record says who fell silent.
func TestMediaTimeoutNamesTheSilentSide(t *testing.T) {
	tp, caller, callee := mediaPBX(t, pbx.Config{MediaTimeout: 300 * time.Millisecond})
	a, b := newRTPPhone(t), newRTPPhone(t)
	inv, _, pa, pb := mediaCall(t, caller, callee, a.sdp(""), b.sdp(""))
	audioBothWays(t, a, b, pa, pb) // talking, then the callee dies
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // the caller goes on talking
		defer close(done)
		for seq := uint16(2); ; seq++ {
			a.Send(pa, seq, "still here")
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stop); <-done }()
	caller.Respond(caller.WaitRequest(sip.BYE), 200, "OK", "")
	callee.Respond(callee.WaitRequest(sip.BYE), 200, "OK", "")
	waitIdle(t, tp)
	if cdr := lastCDR(t, tp, inv.CallID().Value()); cdr.Reason != "media timeout: callee silent" || cdr.HangupBy != "pbx" {
		t.Fatalf("CDR reason %q by %q, want \"media timeout: callee silent\" by pbx", cdr.Reason, cdr.HangupBy)
	}
}

func TestMediaHoldDoesNotTimeOut(t *testing.T) {
	tp, caller, callee := mediaPBX(t, pbx.Config{MediaTimeout: 300 * time.Millisecond})
	a, b := newRTPPhone(t), newRTPPhone(t)
	inv, ok, _, _ := mediaCall(t, caller, callee, a.sdp("a=sendonly\r\n"), b.sdp("a=recvonly\r\n"))
	if m := caller.RecvMsg(time.Second); m != nil {
		if req, isReq := m.(*sip.Request); isReq && req.Method == sip.BYE {
			t.Fatal("a held call was hung up for lack of media")
		}
	}
	hangUp(t, tp, caller, callee, inv, ok, 2)
}

func TestMediaReinviteMovesTheStream(t *testing.T) {
	// The caller moves its media to a new port with a re-INVITE: the callee's view (the PBX's
	// port) does not change, and audio follows the caller to its new port.
	tp, caller, callee := mediaPBX(t, pbx.Config{})
	a, b, a2 := newRTPPhone(t), newRTPPhone(t), newRTPPhone(t)
	inv, ok, pa, pb := mediaCall(t, caller, callee, a.sdp(""), b.sdp(""))

	caller.Send(reinviteFrom(caller, inv, ok, 2, a2.sdp("")))
	re := callee.WaitRequest(sip.INVITE)
	if p := sdpPort(t, re.Body()); p != pb || strings.Contains(string(re.Body()), fmt.Sprint(a2.port())) {
		t.Fatalf("re-INVITE at the callee names port %d, want the PBX's %d:\n%s", p, pb, re.Body())
	}
	callee.Respond(re, 200, "OK", b.sdp(""))
	callee.WaitRequest(sip.ACK)
	res := caller.WaitResponse(200)
	if p := sdpPort(t, res.Body()); p != pa {
		t.Fatalf("answer to the re-INVITE names %d, want %d", p, pa)
	}
	caller.Send(caller.InDialog("ACK", inv, ok, 2))

	audioBothWays(t, a2, b, pa, pb)
	hangUp(t, tp, caller, callee, inv, ok, 3)
}

// ackWithBody is the caller's ACK of a 2xx, carrying a late offer's answer.
func ackWithBody(c *uaClient, inv *sip.Request, ok *sip.Response, body string) string {
	m := c.InDialog("ACK", inv, ok, 1)
	return strings.Replace(m, "Content-Length: 0\r\n\r\n", "Content-Type: application/sdp\r\n"+
		fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body))+body, 1)
}

// lateOfferCall runs a call whose INVITE has no SDP: the callee offers in its 200, the caller
// answers in its ACK, and the callee must get that answer in the PBX's ACK.
func lateOfferCall(t *testing.T, tp *testPBX, caller, callee *uaClient, a, b *rtpPhone) (inv *sip.Request, ok *sip.Response, bAck *sip.Request, bInv *sip.Request) {
	t.Helper()
	msg, inv := inviteWith(caller, "")
	msg = strings.Replace(msg, "Content-Type: application/sdp\r\n", "", 1)
	caller.Send(msg)
	bInv = callee.WaitRequest(sip.INVITE)
	if len(bInv.Body()) != 0 {
		t.Fatalf("the callee got an offer the caller never made: %q", bInv.Body())
	}
	callee.Respond(bInv, 200, "OK", b.sdp(""))
	ok = caller.WaitResponse(200)
	if len(ok.Body()) == 0 {
		t.Fatal("the caller's 200 has no offer")
	}
	caller.Send(ackWithBody(caller, inv, ok, a.sdp("")))
	bAck = callee.WaitRequest(sip.ACK)
	if len(bAck.Body()) == 0 {
		t.Fatal("the callee's ACK carries no answer")
	}
	return inv, ok, bAck, bInv
}

func TestMediaLateOffer(t *testing.T) {
	tp, caller, callee := mediaPBX(t, pbx.Config{})
	a, b := newRTPPhone(t), newRTPPhone(t)
	inv, ok, bAck, _ := lateOfferCall(t, tp, caller, callee, a, b)
	pa, pb := sdpPort(t, ok.Body()), sdpPort(t, bAck.Body())
	if pa == b.port() || pb == a.port() {
		t.Fatalf("a side's own port crossed: caller sees %d, callee sees %d", pa, pb)
	}
	audioBothWays(t, a, b, pa, pb)
	hangUp(t, tp, caller, callee, inv, ok, 2)
}

func TestMediaDTMFEvent(t *testing.T) {
	// The callee presses 7 (RFC 4733): subscribers see call.dtmf.
	tp, caller, callee := mediaPBX(t, pbx.Config{})
	sub := tp.Subscribe(32)
	a, b := newRTPPhone(t), newRTPPhone(t)
	inv, ok, _, pb := mediaCall(t, caller, callee, a.sdp(""), b.sdp(""))
	for i := range 3 {
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 101, SequenceNumber: uint16(i), Timestamp: 800, SSRC: 9},
			Payload: []byte{7, 0x80 | 10, 0, 160}}
		buf, _ := pkt.Marshal()
		b.conn.WriteToUDP(buf, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: pb})
	}
	deadline := time.After(5 * time.Second)
	for found := false; !found; {
		select {
		case ev := <-sub.C:
			if ev.Kind == "call.dtmf" {
				if ev.Digit != "7" || ev.Side != "callee" || ev.CallID != inv.CallID().Value() {
					t.Fatalf("dtmf event %+v", ev)
				}
				found = true
			}
		case <-deadline:
			t.Fatal("no call.dtmf event")
		}
	}
	hangUp(t, tp, caller, callee, inv, ok, 2)
}

func TestMediaQueueMusicThenAgent(t *testing.T) {
	// A queued caller hears the PBX's tone (183 with the PBX's SDP), then the agent through the
	// same port once the agent answers: no new port, no gap in the SDP.
	tp, caller, callees, _ := luaPBXWithMedia(t, `
function route(call)
  local r = call:queue("support", {music = "tone", timeout = 10, ring_timeout = 5})
  if not r.answered then call:reject(r.status) end
end`)
	callee := callees[0]
	if err := tp.store.CreateQueue(context.Background(), &store.Queue{Name: "support", Members: []store.QueueMember{{Extension: "200"}}}); err != nil {
		t.Fatal(err)
	}
	a, b := newRTPPhone(t), newRTPPhone(t)
	msg, inv := inviteWith(caller, a.sdp(""))
	caller.Send(msg)
	caller.WaitResponse(182)
	early := caller.WaitResponse(183)
	pa := sdpPort(t, early.Body())
	if !strings.Contains(string(early.Body()), "RTP/AVP 0 101") {
		t.Fatalf("early answer does not pick PCMU with events:\n%s", early.Body())
	}
	buf := make([]byte, 1500)
	a.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, from, err := a.conn.ReadFromUDP(buf)
	var tone rtp.Packet
	if err != nil || tone.Unmarshal(buf[:n]) != nil || tone.PayloadType != 0 || len(tone.Payload) != 160 || from.Port != pa {
		t.Fatalf("no hold tone from the PBX's port %d: %v (from %v)", pa, err, from)
	}

	bInv := callee.WaitRequest(sip.INVITE)
	pb := sdpPort(t, bInv.Body())
	callee.Respond(bInv, 200, "OK", b.sdp(""))
	ok := caller.WaitResponse(200)
	if p := sdpPort(t, ok.Body()); p != pa {
		t.Fatalf("the answer names port %d, the early media %d: the caller's media would move", p, pa)
	}
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	// The agent talks as phones do, a packet every 20 ms: the first may reach the relay before
	// the answer has switched the caller's port over to the agent.
	if !hears(a, func(seq uint16) { b.Send(pb, seq, "agent speaking") }, "agent speaking", 3*time.Second) {
		t.Fatal("the caller never heard the agent")
	}
	hangUp(t, tp, caller, callee, inv, ok, 2)
}

// hears reports whether p receives payload within d while talk sends a packet every 20 ms.
func hears(p *rtpPhone, talk func(seq uint16), payload string, d time.Duration) bool {
	buf := make([]byte, 1500)
	for seq, deadline := uint16(1), time.Now().Add(d); time.Now().Before(deadline); seq++ {
		talk(seq)
		p.conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		for {
			n, _, err := p.conn.ReadFromUDP(buf)
			if err != nil {
				break // nothing more this round
			}
			var pkt rtp.Packet
			if pkt.Unmarshal(buf[:n]) == nil && string(pkt.Payload) == payload {
				return true
			}
		}
	}
	return false
}

func luaPBXWithMedia(t *testing.T, script string) (*testPBX, *uaClient, []*uaClient, string) {
	t.Helper()
	lo := freeEvenRange(t, 8)
	return luaPBX(t, script, pbx.Config{RTPPortMin: lo, RTPPortMax: lo + 7}, 1)
}

func TestMediaPortsReleasedOnEveryEnd(t *testing.T) {
	// Whatever ends a call, its two port pairs go back to the range.
	tp, caller, callee := mediaPBX(t, pbx.Config{RingTimeout: 300 * time.Millisecond})
	a, b := newRTPPhone(t), newRTPPhone(t)
	free := func() int { f, _ := tp.MediaPorts(); return f }
	waitFree := func(what string) {
		t.Helper()
		waitIdle(t, tp)
		deadline := time.Now().Add(3 * time.Second)
		for free() != 4 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d pairs free, want 4", what, free())
			}
			time.Sleep(10 * time.Millisecond)
		}
		for _, name := range []string{"pbxkit_calls_active", "pbxkit_dialogs", "pbxkit_rtp_ports_in_use"} {
			if v := gauge(t, tp.PBX, name); v != 0 {
				t.Fatalf("%s: %s %v after the call", what, name, v)
			}
		}
	}
	ring := func() (*sip.Request, *sip.Request) {
		msg, inv := inviteWith(caller, a.sdp(""))
		caller.Send(msg)
		bInv := callee.WaitRequest(sip.INVITE)
		if free() != 2 {
			t.Fatalf("%d pairs free while ringing, want 2", free())
		}
		if calls, ports := gauge(t, tp.PBX, "pbxkit_calls_active"), gauge(t, tp.PBX, "pbxkit_rtp_ports_in_use"); calls != 1 || ports != 2 {
			t.Fatalf("while ringing: pbxkit_calls_active %v, pbxkit_rtp_ports_in_use %v; want 1 and 2", calls, ports)
		}
		return inv, bInv
	}

	// Busy.
	inv, bInv := ring()
	callee.Respond(bInv, 486, "Busy Here", "")
	awaitFinal(t, caller, inv, 5*time.Second)
	waitFree("busy")

	// Caller cancels.
	inv, bInv = ring()
	callee.Respond(bInv, 180, "Ringing", "")
	caller.WaitResponse(180)
	caller.Send(cancelOf(inv))
	awaitFinal(t, caller, inv, 5*time.Second) // 487
	callee.AcceptCancel(bInv)
	waitFree("cancel")

	// Ring timeout.
	inv, bInv = ring()
	callee.Respond(bInv, 180, "Ringing", "")
	awaitFinal(t, caller, inv, 5*time.Second) // 480
	callee.AcceptCancel(bInv)
	waitFree("ring timeout")

	// BYE from the callee after an answer.
	inv, bInv = ring()
	callee.Respond(bInv, 200, "OK", b.sdp(""))
	ok := caller.WaitResponse(200)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	callee.WaitRequest(sip.ACK)
	callee.Send("BYE " + "sip:100@" + tp.addr.String() + " SIP/2.0\r\nVia: SIP/2.0/UDP " + callee.Addr() + ";branch=z9hG4bK-byeb;rport\r\n" +
		"Max-Forwards: 70\r\nFrom: " + bInv.To().Value() + ";tag=callee-tag\r\nTo: " + bInv.From().Value() + "\r\nCall-ID: " +
		bInv.CallID().Value() + "\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n")
	caller.Respond(caller.WaitRequest(sip.BYE), 200, "OK", "")
	waitFree("bye from the callee")
}

func TestMediaNoCodec606FromDialplan(t *testing.T) {
	// An offer without an allowed codec: connect comes to 488, and the dialplan may answer 606.
	_, caller, _, _ := luaPBXWithMedia(t, `
function route(call)
  local r = call:connect(call.to)
  if r.status == 488 and call.to == "200" then return call:reject(606) end
  call:reject(r.status)
end`)
	g729 := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n"
	msg, inv := inviteWith(caller, g729)
	caller.Send(msg)
	if res := final(awaitFinal(t, caller, inv, 5*time.Second)); res.StatusCode != 606 || res.Reason != "Not Acceptable" {
		t.Fatalf("got %d %q, want 606 Not Acceptable", res.StatusCode, res.Reason)
	}
}

// What the phones say in RTCP reaches the CDR: the caller's reception report (loss, jitter) and
// the round trip from the PBX to it, measured from the callee's sender report the PBX relayed.
func TestMediaRTCPReportsInCDR(t *testing.T) {
	tp, caller, callee := mediaPBX(t, pbx.Config{})
	a, b := newRTPPhone(t), newRTPPhone(t)
	inv, ok, pa, pb := mediaCall(t, caller, callee, a.sdp("a=rtcp-mux\r\n"), b.sdp("a=rtcp-mux\r\n"))
	audioBothWays(t, a, b, pa, pb)

	const ntp = uint64(0xaabbccdd_11223344)
	sendRTCPTo(t, b, pb, &rtcp.SenderReport{SSRC: 7, NTPTime: ntp, PacketCount: 1})
	if sr, ok := recvRTCPAt(t, a).(*rtcp.SenderReport); !ok || sr.NTPTime != ntp {
		t.Fatalf("the caller did not get the callee's sender report: %#v", sr)
	}
	time.Sleep(20 * time.Millisecond)
	sendRTCPTo(t, a, pa, &rtcp.ReceiverReport{SSRC: 9, Reports: []rtcp.ReceptionReport{
		{SSRC: 7, FractionLost: 0, TotalLost: 4, Jitter: 40, LastSenderReport: uint32(ntp >> 16 & 0xffffffff), Delay: 0}}})
	if rr, ok := recvRTCPAt(t, b).(*rtcp.ReceiverReport); !ok || len(rr.Reports) != 1 {
		t.Fatalf("the callee did not get the caller's receiver report: %#v", rr)
	}
	hangUp(t, tp, caller, callee, inv, ok, 2)
	cdr := lastCDR(t, tp, inv.CallID().Value())
	if cdr.ALeg.ReportedLost != 4 || cdr.ALeg.ReportedJitterMS != 5 || cdr.ALeg.RTTMS < 15 || cdr.ALeg.RTTMS > 1000 {
		t.Fatalf("caller leg %+v: want reported lost 4, jitter 5 ms, round trip about 20 ms", cdr.ALeg)
	}
	if cdr.BLeg.ReportedLost != 0 || cdr.BLeg.RTTMS != 0 {
		t.Fatalf("callee leg %+v: it sent no reception report", cdr.BLeg)
	}
}

func sendRTCPTo(t *testing.T, p *rtpPhone, port int, pkt rtcp.Packet) {
	t.Helper()
	raw, err := pkt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p.conn.WriteToUDP(raw, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
}

func recvRTCPAt(t *testing.T, p *rtpPhone) rtcp.Packet {
	t.Helper()
	buf := make([]byte, 1500)
	p.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, _, err := p.conn.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("no RTCP relayed: %v", err)
	}
	pkts, err := rtcp.Unmarshal(buf[:n])
	if err != nil {
		t.Fatalf("relayed RTCP does not parse: %v", err)
	}
	return pkts[0]
}

// With the relay on its own address (127.0.0.2 here, the phones on 127.0.0.1), every description
// that crosses the PBX (the offer, the callee's 183, its 200, an UPDATE and its answer) names only
// the PBX, and early media and later audio come from the PBX's address and ports.
func TestMediaOnlyThePBXIsSeen(t *testing.T) {
	tp, caller, callee := mediaPBX(t, pbx.Config{RTPAddress: "127.0.0.2"})
	a, b, a2 := newRTPPhone(t), newRTPPhone(t), newRTPPhone(t)
	relayIP := net.IPv4(127, 0, 0, 2)
	onlyPBX := func(what string, body []byte) int {
		t.Helper()
		s := string(body)
		if strings.Contains(s, "127.0.0.1") || !strings.Contains(s, "c=IN IP4 127.0.0.2\r\n") || !strings.Contains(s, "IN IP4 127.0.0.2\r\ns=") {
			t.Fatalf("%s does not show only the PBX's address:\n%s", what, s)
		}
		return sdpPort(t, body)
	}
	fromPBX := func(p *rtpPhone, want string, port int) {
		t.Helper()
		buf := make([]byte, 1500)
		p.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, src, err := p.conn.ReadFromUDP(buf)
		var pkt rtp.Packet
		if err != nil || pkt.Unmarshal(buf[:n]) != nil || string(pkt.Payload) != want || src.String() != fmt.Sprintf("127.0.0.2:%d", port) {
			t.Fatalf("got %q from %v (%v), want %q from 127.0.0.2:%d", pkt.Payload, src, err, want, port)
		}
	}

	msg, inv := inviteWith(caller, a.sdp(""))
	caller.Send(msg)
	bInv := callee.WaitRequest(sip.INVITE)
	pb := onlyPBX("the callee's offer", bInv.Body())
	callee.Respond(bInv, 183, "Session Progress", b.sdp(""))
	early := caller.WaitResponse(183)
	pa := onlyPBX("the caller's 183", early.Body())
	b.sendTo(relayIP, pb, 1, "early media")
	fromPBX(a, "early media", pa)

	callee.Respond(bInv, 200, "OK", b.sdp(""))
	ok := caller.WaitResponse(200)
	if p := onlyPBX("the caller's 200", ok.Body()); p != pa {
		t.Fatalf("the 200 names port %d, the 183 named %d", p, pa)
	}
	caller.Send(caller.InDialog("ACK", inv, ok, 1))

	// The caller moves its media with an UPDATE carrying a new offer.
	upd := caller.InDialog("UPDATE", inv, ok, 2)
	body := a2.sdp("")
	upd = strings.Replace(upd, "Content-Length: 0\r\n\r\n", "Content-Type: application/sdp\r\n"+
		fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body))+body, 1)
	caller.Send(upd)
	u := callee.WaitRequest(sip.UPDATE)
	if p := onlyPBX("the callee's UPDATE", u.Body()); p != pb {
		t.Fatalf("the UPDATE names port %d, want the PBX's %d", p, pb)
	}
	callee.Respond(u, 200, "OK", b.sdp(""))
	if res := caller.WaitResponse(200); onlyPBX("the answer to the UPDATE", res.Body()) != pa {
		t.Fatalf("the answer to the UPDATE names another port than %d", pa)
	}
	a2.sendTo(relayIP, pa, 2, "after update")
	fromPBX(b, "after update", pb)
	b.sendTo(relayIP, pb, 2, "back")
	fromPBX(a2, "back", pa)
	hangUp(t, tp, caller, callee, inv, ok, 3)
}

// The statistics are readable while the call runs (Call.MediaStats), for a Go dialplan or
// anything else holding the call.
func TestMediaStatsOnALiveCall(t *testing.T) {
	calls := make(chan *b2bua.Call, 1)
	keep := dialplan.HandlerFunc(func(ctx context.Context, c *b2bua.Call) error {
		calls <- c
		_, err := c.Connect(ctx, []string{c.Callee()}, b2bua.ConnectOptions{})
		return err
	})
	tp, caller, callee := mediaPBX(t, pbx.Config{Dialplan: keep})
	a, b := newRTPPhone(t), newRTPPhone(t)
	inv, ok, pa, pb := mediaCall(t, caller, callee, a.sdp(""), b.sdp(""))
	c := <-calls
	audioBothWays(t, a, b, pa, pb)
	a.Send(pa, 3, "again") // sequence 2 is missing
	b.recv()
	ca, cb, relayed := c.MediaStats()
	if !relayed || ca.Packets != 2 || ca.Lost != 1 || cb.Packets != 1 || ca.Bytes != uint64(12+len("to callee")+12+len("again")) {
		t.Fatalf("live statistics: relayed %v, caller %+v, callee %+v", relayed, ca, cb)
	}
	hangUp(t, tp, caller, callee, inv, ok, 2)
}

// TestMediaProvisionalThenFinalInOrder: with the relay on (so every 183's description is
// rewritten on its way), a callee's 183 with SDP followed at once by 486, and a 180 followed at
// once by 200, reach the caller in that order every time: 200 rounds each.
func TestMediaProvisionalThenFinalInOrder(t *testing.T) {
	tp, caller, callee := mediaPBX(t, pbx.Config{})
	b := newRTPPhone(t)
	for _, tc := range []struct {
		provisional, final int
		body               string
	}{{183, 486, b.sdp("")}, {180, 200, ""}} {
		for round := range 200 {
			msg, inv := invite(caller)
			caller.Send(msg)
			bInv := callee.WaitRequest(sip.INVITE)
			body := tc.body
			if tc.final == 200 {
				body = b.sdp("")
			}
			callee.Respond(bInv, tc.provisional, "Progress", tc.body)
			callee.Respond(bInv, tc.final, "Final", body)
			var got []int
			rs := awaitFinal(t, caller, inv, 5*time.Second)
			for _, r := range rs {
				if r.StatusCode != 100 {
					got = append(got, r.StatusCode)
				}
			}
			if len(got) != 2 || got[0] != tc.provisional || got[1] != tc.final {
				t.Fatalf("round %d: the caller got %v, want [%d %d]", round, got, tc.provisional, tc.final)
			}
			if tc.final == 200 {
				ok := final(rs)
				caller.Send(caller.InDialog("ACK", inv, ok, 1))
				callee.WaitRequest(sip.ACK)
				hangUp(t, tp, caller, callee, inv, ok, 2)
			} else {
				waitIdle(t, tp)
			}
		}
	}
}

// rtpSprayer sends RTP (a steady stream per port) and RTCP from ip to every port of lo-hi over
// and over, and counts what it receives.
type rtpSprayer struct {
	conn     *net.UDPConn
	stop     chan struct{}
	wg       sync.WaitGroup
	received atomic.Int64
}

func sprayPorts(t *testing.T, ip net.IP, lo, hi int) *rtpSprayer {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
	if err != nil {
		t.Skipf("cannot bind %v: %v", ip, err)
	}
	sp := &rtpSprayer{conn: c, stop: make(chan struct{})}
	sp.wg.Add(2)
	go func() {
		defer sp.wg.Done()
		rtcpPkt := []byte{0x80, 201, 0, 1, 0, 0, 0x0b, 0xad}
		for seq := uint16(1); ; seq++ {
			for port := lo; port <= hi; port++ {
				pkt, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: 0xbad},
					Payload: []byte("injected")}).Marshal()
				c.WriteToUDP(pkt, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
				c.WriteToUDP(rtcpPkt, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
			}
			select {
			case <-sp.stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	go func() {
		defer sp.wg.Done()
		buf := make([]byte, 1500)
		for {
			if _, _, err := c.ReadFromUDP(buf); err != nil {
				return
			}
			sp.received.Add(1)
		}
	}()
	t.Cleanup(sp.close)
	return sp
}

func (sp *rtpSprayer) close() {
	select {
	case <-sp.stop:
		return
	default:
	}
	close(sp.stop)
	sp.conn.Close()
	sp.wg.Wait()
}

// A third host spraying every port of the relay's range, from before the call to its end (the
// attack of issue 12: ports handed out in order, the first source latched): it receives nothing,
// and each phone hears only the other.
func TestMediaSprayedPortsGetNothing(t *testing.T) {
	lo := freeEvenRange(t, 8)
	tp, caller, callees := callPBX(t, pbx.Config{RTPPortMin: lo, RTPPortMax: lo + 7}, 1)
	callee := callees[0]
	sp := sprayPorts(t, net.IPv4(127, 0, 0, 3), lo, lo+7)
	time.Sleep(50 * time.Millisecond)

	a, b := newRTPPhone(t), newRTPPhone(t)
	inv, ok, pa, pb := mediaCall(t, caller, callee, a.sdp(""), b.sdp(""))
	for i := range 10 {
		want := fmt.Sprintf("to callee %d", i)
		a.Send(pa, uint16(i+1), want)
		if got, from := b.recv(); got != want || from != pb {
			t.Fatalf("round %d: callee got %q from %d, want %q from %d", i, got, from, want, pb)
		}
		want = fmt.Sprintf("to caller %d", i)
		b.Send(pb, uint16(i+1), want)
		if got, from := a.recv(); got != want || from != pa {
			t.Fatalf("round %d: caller got %q from %d, want %q from %d", i, got, from, want, pa)
		}
		time.Sleep(20 * time.Millisecond)
	}
	hangUp(t, tp, caller, callee, inv, ok, 2)
	sp.close()
	if n := sp.received.Load(); n != 0 {
		t.Fatalf("the sprayer received %d datagrams", n)
	}
	if cdr := lastCDR(t, tp, inv.CallID().Value()); cdr.ALeg.Packets != 10 || cdr.BLeg.Packets != 10 {
		t.Fatalf("CDR counts %d/%d packets, want the phones' 10 each", cdr.ALeg.Packets, cdr.BLeg.Packets)
	}
}

// A phone behind a NAT that keeps its address but maps its port: its packets come from another
// port than its SDP names. The relay learns that source and the other side's audio goes back to
// it.
func TestMediaNATedPhoneOtherPort(t *testing.T) {
	tp, caller, callee := mediaPBX(t, pbx.Config{})
	a, b, signalled := newRTPPhone(t), newRTPPhone(t), newRTPPhone(t)
	inv, ok, pa, pb := mediaCall(t, caller, callee, signalled.sdp(""), b.sdp(""))
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // the phone's stream, from its real port
		defer close(done)
		for seq := uint16(1); ; seq++ {
			a.Send(pa, seq, "behind NAT")
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stop); <-done }()
	if got, _ := b.recv(); got != "behind NAT" {
		t.Fatalf("callee got %q", got)
	}
	b.Send(pb, 1, "back")
	for {
		got, _ := a.recv()
		if got == "back" {
			break
		}
		if got == "" {
			t.Fatal("the callee's audio never reached the port the caller sends from")
		}
	}
	hangUp(t, tp, caller, callee, inv, ok, 2)
}

// gauge reads a gauge of the PBX's /metrics registry.
func gauge(t *testing.T, p *pbx.PBX, name string) float64 {
	t.Helper()
	families, err := p.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}

// TestMediaQueueAnnouncement: a queued caller hears the hold music and, every announce seconds,
// the announcement WAV in its place, from its start, in the same RTP stream.
func TestMediaQueueAnnouncement(t *testing.T) {
	wavPath := filepath.Join(t.TempDir(), "busy.wav")
	writeConstantWAV(t, wavPath, 4000, 1600) // 0.2 s of one loud sample: a payload the tone never has
	tp, caller, callees, _ := luaPBXWithMedia(t, `
function route(call)
  local r = call:queue("support", {music = "tone", announce = 1, announcement = "`+wavPath+`", timeout = 10, ring_timeout = 8})
  if not r.answered then call:reject(r.status) end
end`)
	callee := callees[0]
	if err := tp.store.CreateQueue(context.Background(), &store.Queue{Name: "support", Members: []store.QueueMember{{Extension: "200"}}}); err != nil {
		t.Fatal(err)
	}
	a := newRTPPhone(t)
	msg, inv := inviteWith(caller, a.sdp(""))
	caller.Send(msg)
	caller.WaitResponse(183)
	bInv := callee.WaitRequest(sip.INVITE) // the agent is rung and does not answer meanwhile

	// Frames of the announcement are runs of 10 frames (0.2 s) of one µ-law byte; count the runs
	// in 2.6 s.
	announced := g711.EncodeUlawFrame(4000)
	var ssrcs = map[uint32]bool{}
	runs, inRun := 0, false
	buf := make([]byte, 1500)
	for deadline := time.Now().Add(2600 * time.Millisecond); time.Now().Before(deadline); {
		a.conn.SetReadDeadline(deadline)
		n, _, err := a.conn.ReadFromUDP(buf)
		if err != nil {
			break
		}
		var pkt rtp.Packet
		if pkt.Unmarshal(buf[:n]) != nil || len(pkt.Payload) != 160 {
			continue
		}
		ssrcs[pkt.SSRC] = true
		loud := pkt.PayloadType == 0 && bytes.Count(pkt.Payload, []byte{announced}) == 160
		if loud && !inRun {
			runs++
		}
		inRun = loud
	}
	if runs < 2 || len(ssrcs) != 1 {
		t.Fatalf("announcement heard %d times in 2.6 s (want 2, every 1 s of music) in %d RTP streams (want 1)", runs, len(ssrcs))
	}
	callee.Respond(bInv, 486, "Busy Here", "")
	caller.Send(cancelOf(inv))
	awaitFinal(t, caller, inv, 5*time.Second)
	waitIdle(t, tp)
}

// writeConstantWAV writes an 8 kHz mono 16-bit PCM WAV of n samples of value v.
func writeConstantWAV(t *testing.T, path string, v int16, n int) {
	t.Helper()
	data := make([]byte, 44+2*n)
	copy(data, "RIFF")
	binary.LittleEndian.PutUint32(data[4:], uint32(36+2*n))
	copy(data[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(data[16:], 16)
	binary.LittleEndian.PutUint16(data[20:], 1) // PCM
	binary.LittleEndian.PutUint16(data[22:], 1) // mono
	binary.LittleEndian.PutUint32(data[24:], 8000)
	binary.LittleEndian.PutUint32(data[28:], 16000)
	binary.LittleEndian.PutUint16(data[32:], 2)
	binary.LittleEndian.PutUint16(data[34:], 16)
	copy(data[36:], "data")
	binary.LittleEndian.PutUint32(data[40:], uint32(2*n))
	for i := range n {
		binary.LittleEndian.PutUint16(data[44+2*i:], uint16(v))
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
