package media

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newTestRelay(t *testing.T, pairs int, cfg Config) *Relay {
	t.Helper()
	lo := freeRange(t, 2*pairs)
	ports, err := NewPorts(net.IPv4(127, 0, 0, 1), lo, lo+2*pairs-1)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Ports = ports
	r, err := NewRelay(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// endpoint is a phone's RTP socket.
type endpoint struct {
	t    *testing.T
	conn *net.UDPConn
}

func newEndpoint(t *testing.T) *endpoint {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &endpoint{t: t, conn: c}
}

func (e *endpoint) port() int { return e.conn.LocalAddr().(*net.UDPAddr).Port }

func (e *endpoint) sdp(extra string) []byte {
	return []byte(fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n%s", e.port(), extra))
}

func (e *endpoint) send(to int, seq uint16, payload string) {
	e.t.Helper()
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: 0x1234}, Payload: []byte(payload)}
	b, _ := p.Marshal()
	if _, err := e.conn.WriteToUDP(b, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: to}); err != nil {
		e.t.Fatal(err)
	}
}

// recv returns the payload of the next RTP packet and where it came from, or "" after timeout.
func (e *endpoint) recv(timeout time.Duration) (string, int) {
	buf := make([]byte, 1500)
	e.conn.SetReadDeadline(time.Now().Add(timeout))
	n, from, err := e.conn.ReadFromUDP(buf)
	if err != nil {
		return "", 0
	}
	var p rtp.Packet
	if err := p.Unmarshal(buf[:n]); err != nil {
		return "junk", from.Port
	}
	return string(p.Payload), from.Port
}

// callSession sets up a session between two endpoints: caller offer, callee answer.
func callSession(t *testing.T, r *Relay, a, b *endpoint) (*Session, int, int) {
	t.Helper()
	return callSessionWith(t, r, a.sdp(""), b.sdp(""))
}

// callSessionWith sets up a session from the caller's offer and the callee's answer, and returns
// it with the PBX's ports facing the caller and the callee.
func callSessionWith(t *testing.T, r *Relay, offerIn, answerIn []byte) (*Session, int, int) {
	t.Helper()
	s, err := r.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	offer, err := s.Rewrite(true, offerIn)
	if err != nil {
		t.Fatal(err)
	}
	answer, err := s.Rewrite(false, answerIn)
	if err != nil {
		t.Fatal(err)
	}
	pa, pb := s.Ports()
	if !strings.Contains(string(offer), fmt.Sprintf("m=audio %d ", pb)) || !strings.Contains(string(answer), fmt.Sprintf("m=audio %d ", pa)) {
		t.Fatalf("offer/answer do not name the PBX ports %d/%d:\n%s\n%s", pa, pb, offer, answer)
	}
	return s, pa, pb
}

func TestRelayBothWays(t *testing.T) {
	r := newTestRelay(t, 2, Config{})
	a, b := newEndpoint(t), newEndpoint(t)
	s, pa, pb := callSession(t, r, a, b)
	a.send(pa, 1, "hello b")
	if got, from := b.recv(time.Second); got != "hello b" || from != pb {
		t.Fatalf("callee got %q from port %d, want from the PBX's port %d", got, from, pb)
	}
	b.send(pb, 7, "hello a")
	if got, from := a.recv(time.Second); got != "hello a" || from != pa {
		t.Fatalf("caller got %q from port %d, want %d", got, from, pa)
	}
	sa, sb := s.Stats()
	if sa.Packets != 1 || sb.Packets != 1 || sa.Bytes != 19 {
		t.Fatalf("stats %+v %+v", sa, sb)
	}
}

func TestRelayIgnoresHijackAndJunk(t *testing.T) {
	r := newTestRelay(t, 2, Config{LatchWindow: 50 * time.Millisecond})
	a, b := newEndpoint(t), newEndpoint(t)
	_, pa, _ := callSession(t, r, a, b)
	a.send(pa, 1, "from a")
	if got, _ := b.recv(time.Second); got != "from a" {
		t.Fatalf("callee got %q", got)
	}
	stranger := newEndpoint(t)
	stranger.send(pa, 2, "hijack")
	junk := []byte("not rtp at all")
	stranger.conn.WriteToUDP(junk, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: pa})
	a.conn.WriteToUDP([]byte{0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: pa}) // version 1
	a.send(pa, 3, "still a")
	if got, _ := b.recv(time.Second); got != "still a" {
		t.Fatalf("callee got %q, want only the caller's packets", got)
	}
	if got, _ := b.recv(100 * time.Millisecond); got != "" {
		t.Fatalf("callee got a further %q", got)
	}
}

func TestRelayLossAndJitter(t *testing.T) {
	r := newTestRelay(t, 2, Config{})
	a, b := newEndpoint(t), newEndpoint(t)
	s, pa, _ := callSession(t, r, a, b)
	for _, seq := range []uint16{65533, 65534, 1, 2} { // 65535 and 0 lost, across the wrap
		a.send(pa, seq, "x")
		b.recv(time.Second)
	}
	sa, _ := s.Stats()
	if sa.Packets != 4 || sa.Lost != 2 {
		t.Fatalf("stats %+v, want 4 packets and 2 lost", sa)
	}
	if sa.Jitter <= 0 {
		t.Fatalf("jitter %v: packets sent back to back with 20 ms timestamps must show jitter", sa.Jitter)
	}
}

func TestRelayReleasesPortsAndExhausts(t *testing.T) {
	r := newTestRelay(t, 2, Config{})
	s, err := r.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.NewSession(); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("second session on a range of two pairs: %v", err)
	}
	s.Close()
	s.Close()
	if r.Ports().Free() != 2 {
		t.Fatalf("%d pairs free after close, want 2", r.Ports().Free())
	}
	s2, err := r.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
}

// scratchSession is a session for driving the receive path without sockets: the caller described
// with media (its address 127.0.0.1:9), the callee with no address, so nothing is ever sent. Its
// port pairs come from lo-lo+127, skipping busy ones (each fuzzing process takes its own).
func scratchSession(tb testing.TB, lo int, media string) *Session {
	tb.Helper()
	ports, err := NewPorts(net.IPv4(127, 0, 0, 1), lo, lo+127)
	if err != nil {
		tb.Fatal(err)
	}
	r, _ := NewRelay(Config{Ports: ports, Timeout: -1})
	s, err := r.NewSession()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	if _, err := s.Rewrite(true, []byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+media)); err != nil {
		tb.Fatal(err)
	}
	return s
}

// FuzzRTPPath feeds datagrams through a session's whole receive path (classification, latching,
// statistics, DTMF, RTCP reading) on the RTP and the RTCP port; nothing is sent, since the other
// side has no address yet.
func FuzzRTPPath(f *testing.F) {
	p := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: 1, SSRC: 1, CSRC: []uint32{2}, Extension: true,
		ExtensionProfile: 0xBEDE}, Payload: []byte("abc")}
	p.SetExtension(1, []byte{1, 2})
	b, _ := p.Marshal()
	f.Add(b)
	f.Add([]byte{0x80, 200, 0, 1, 0, 0, 0, 1})
	f.Add([]byte{0x9f, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1})
	dtmf, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 101, SSRC: 3}, Payload: []byte{5, 0x8a, 0, 160}}).Marshal()
	f.Add(dtmf)
	sr, _ := (&rtcp.SenderReport{SSRC: 1, NTPTime: 1 << 40, Reports: []rtcp.ReceptionReport{{SSRC: 2, TotalLost: 0x800000, LastSenderReport: 1 << 24}}}).Marshal()
	f.Add(sr)
	rr, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: 1}, &rtcp.Goodbye{Sources: []uint32{1}}})
	f.Add(rr)

	s := scratchSession(f, 41200, "m=audio 9 RTP/AVP 0 111 101\r\na=rtpmap:111 opus/48000/2\r\n"+
		"a=rtpmap:101 telephone-event/8000\r\na=rtcp-mux\r\n")
	s.OnDTMF(func(bool, string) {})
	src := netip.MustParseAddrPort("127.0.0.1:9")
	f.Fuzz(func(t *testing.T, pkt []byte) {
		var h rtp.Header
		s.fromRTPPort(s.a, pkt, src, &h, time.Now(), nil)
		s.fromRTCPPort(s.a, pkt, netip.MustParseAddrPort("127.0.0.1:10"))
		s.fromRTPPort(s.b, pkt, src, &h, time.Now(), nil) // the callee: no address, nothing latched
		var st stream
		if classify(pkt, &h) == rtpPacket {
			st.add(&h, len(pkt), time.Now(), 0)
			st.add(&h, len(pkt), time.Now(), 0)
			if st.lost() > 1<<17 {
				t.Fatalf("lost %d from two packets", st.lost())
			}
		}
		if a, _ := s.Stats(); a.Jitter < 0 || a.Report.Fraction < 0 || a.Report.Fraction >= 1 {
			t.Fatalf("stats out of range: %+v", a)
		}
	})
}

func TestRelayReportsDTMF(t *testing.T) {
	r := newTestRelay(t, 2, Config{})
	a, b := newEndpoint(t), newEndpoint(t)
	s, pa, _ := callSession(t, r, a, b)
	got := make(chan string, 10)
	s.OnDTMF(func(fromCaller bool, digit string) { got <- fmt.Sprint(fromCaller, digit) })
	send := func(seq uint16, ts uint32, event byte, end bool, marker bool) {
		flags := byte(10) // volume
		if end {
			flags |= 0x80
		}
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 101, SequenceNumber: seq, Timestamp: ts, SSRC: 0x1234, Marker: marker},
			Payload: []byte{event, flags, 0, 160}}
		buf, _ := p.Marshal()
		a.conn.WriteToUDP(buf, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: pa})
		b.recv(time.Second) // relayed to the callee as it is
	}
	// Key 5: start, continuation, three end packets (RFC 4733 §2.5.1.4); then key #.
	send(1, 1000, 5, false, true)
	send(2, 1000, 5, false, false)
	for i := range 3 {
		send(uint16(3+i), 1000, 5, true, false)
	}
	send(6, 2000, 11, false, true)
	for i := range 3 {
		send(uint16(7+i), 2000, 11, true, false)
	}
	var keys []string
	for range 2 {
		select {
		case k := <-got:
			keys = append(keys, k)
		case <-time.After(2 * time.Second):
			t.Fatalf("keys reported: %v", keys)
		}
	}
	select {
	case k := <-got:
		t.Fatalf("a key reported twice or more: %v then %s", keys, k)
	case <-time.After(100 * time.Millisecond):
	}
	if strings.Join(keys, ",") != "true5,true#" {
		t.Fatalf("keys %v", keys)
	}
}
