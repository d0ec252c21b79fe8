package media

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"go.uber.org/goleak"
)

// sdpAt is a description whose audio stream is at addr ("ip:port"), with extra lines appended.
func sdpAt(addr, extra string) []byte {
	ap := netip.MustParseAddrPort(addr)
	return fmt.Appendf(nil, "v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n%s",
		ap.Addr(), ap.Addr(), ap.Port(), extra)
}

// learner drives a session's source rule for one side without sockets: each packet is offered
// at a time relative to start (just after the side's description).
type learner struct {
	t     *testing.T
	s     *Session
	sd    *side
	start time.Time
}

func newLearner(t *testing.T, callerAt string) *learner {
	t.Helper()
	r := newTestRelay(t, 2, Config{LatchWindow: time.Second, LatchDelay: 100 * time.Millisecond, Timeout: -1})
	s, err := r.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if _, err := s.Rewrite(true, sdpAt(callerAt, "")); err != nil {
		t.Fatal(err)
	}
	return &learner{t: t, s: s, sd: s.a, start: time.Now()}
}

// rtp offers an RTP packet of ssrc/seq from src at start+at and returns whether it was taken.
func (l *learner) rtp(src string, ssrc uint32, seq uint16, at time.Duration) bool {
	h := rtp.Header{Version: 2, SSRC: ssrc, SequenceNumber: seq}
	return l.s.accept(l.sd, netip.MustParseAddrPort(src), &h, l.start.Add(at))
}

// stream offers n packets of one stream from src, 10 ms apart from at, and returns how many of
// them were taken and the index of the first one taken (-1: none).
func (l *learner) stream(src string, ssrc uint32, n int, at time.Duration) (taken, first int) {
	first = -1
	for i := range n {
		if l.rtp(src, ssrc, uint16(i+1), at+time.Duration(i)*10*time.Millisecond) {
			taken++
			if first < 0 {
				first = i
			}
		}
	}
	return taken, first
}

func (l *learner) source() netip.AddrPort {
	l.sd.mu.Lock()
	defer l.sd.mu.Unlock()
	return l.sd.source
}

// The rule, case by case (source.go).
func TestSourceRule(t *testing.T) {
	t.Run("the signalled address is taken at once and is final", func(t *testing.T) {
		l := newLearner(t, "192.168.1.20:4000")
		if !l.rtp("192.168.1.20:4000", 1, 1, 0) {
			t.Fatal("the signalled address was refused")
		}
		// A silent phone is not displaced by a stream from elsewhere, however long it waits.
		if taken, _ := l.stream("198.51.100.7:5000", 2, 20, 500*time.Millisecond); taken != 0 {
			t.Fatalf("a stranger's stream was taken (%d packets) from a side learned at its signalled address", taken)
		}
		if l.sd.snapshot().Strangers != 20 {
			t.Fatalf("strangers %d, want 20", l.sd.snapshot().Strangers)
		}
	})
	t.Run("same host, other port: probation, no delay", func(t *testing.T) {
		l := newLearner(t, "192.168.1.20:4000")
		taken, first := l.stream("192.168.1.20:4100", 1, 6, 0)
		if first != 3 || taken != 3 {
			t.Fatalf("taken %d from packet %d; want from the 4th (4 in sequence spanning 22 ms)", taken, first)
		}
	})
	t.Run("probation wants packets in sequence over time", func(t *testing.T) {
		l := newLearner(t, "192.168.1.20:4000")
		for i := range 10 { // a burst: four in sequence but within a millisecond
			if l.rtp("192.168.1.20:4100", 1, uint16(i+1), time.Duration(i)*100*time.Microsecond) {
				t.Fatalf("packet %d of a 1 ms burst taken", i)
			}
		}
		l2 := newLearner(t, "192.168.1.20:4000")
		for i := range 10 { // spread out, but not in sequence
			if l2.rtp("192.168.1.20:4100", 1, uint16(3*i), time.Duration(i)*20*time.Millisecond) {
				t.Fatalf("packet %d out of sequence taken", i)
			}
		}
	})
	t.Run("another host behind NAT: after LatchDelay and probation", func(t *testing.T) {
		l := newLearner(t, "192.168.1.20:4000")
		if taken, _ := l.stream("198.51.100.7:5000", 1, 9, 0); taken != 0 {
			t.Fatalf("another host taken within LatchDelay (%d packets)", taken)
		}
		taken, first := l.stream("198.51.100.7:5000", 1, 6, 150*time.Millisecond)
		if first != 3 {
			t.Fatalf("taken %d from packet %d after the delay; want from the 4th", taken, first)
		}
		if got := l.source(); got != netip.MustParseAddrPort("198.51.100.7:5000") {
			t.Fatalf("learned %v", got)
		}
	})
	t.Run("another host is never learned for a public address", func(t *testing.T) {
		for _, addr := range []string{"203.0.113.5:4000", "8.8.8.8:4000"} {
			l := newLearner(t, addr)
			if taken, _ := l.stream("198.51.100.7:5000", 1, 50, 150*time.Millisecond); taken != 0 {
				t.Fatalf("%s: another host taken (%d packets)", addr, taken)
			}
			if taken, _ := l.stream("203.0.113.5:4100", 1, 6, 200*time.Millisecond); addr == "203.0.113.5:4000" && taken == 0 {
				t.Fatalf("%s: its own host from another port refused", addr)
			}
		}
	})
	t.Run("competing streams reset each other", func(t *testing.T) {
		l := newLearner(t, "10.0.0.5:4000")
		for i := range 20 {
			at := 150*time.Millisecond + time.Duration(i)*10*time.Millisecond
			if l.rtp("198.51.100.7:5000", 1, uint16(i+1), at) || l.rtp("198.51.100.8:5000", 2, uint16(i+1), at+time.Millisecond) {
				t.Fatalf("packet %d: one of two interleaved streams was learned", i)
			}
		}
	})
	t.Run("a learned source that still sends is not displaced", func(t *testing.T) {
		l := newLearner(t, "10.0.0.5:4000")
		l.stream("198.51.100.7:5000", 1, 6, 150*time.Millisecond) // learned
		for i := range 30 {
			at := 220*time.Millisecond + time.Duration(i)*20*time.Millisecond
			if !l.rtp("198.51.100.7:5000", 1, uint16(10+i), at) {
				t.Fatalf("the learned source refused at packet %d", i)
			}
			for j := range 5 { // a flood between its packets
				if l.rtp("198.51.100.9:6000", 9, uint16(5*i+j), at+time.Duration(j+1)*3*time.Millisecond) {
					t.Fatalf("a flood took over from a source that still sends (packet %d/%d)", i, j)
				}
			}
		}
		// Silent for LatchDelay, within the window: another stream may take over (a NAT that
		// rebound the phone's mapping).
		if taken, _ := l.stream("198.51.100.9:6000", 9, 6, 900*time.Millisecond); taken == 0 {
			t.Fatal("a new source was not learned after the old one fell silent")
		}
	})
	t.Run("the signalled address replaces a NAT source within the window, not after", func(t *testing.T) {
		l := newLearner(t, "10.0.0.5:4000")
		l.stream("198.51.100.7:5000", 1, 6, 150*time.Millisecond)
		if !l.rtp("10.0.0.5:4000", 2, 1, 300*time.Millisecond) {
			t.Fatal("the signalled address refused within the window")
		}
		l2 := newLearner(t, "10.0.0.5:4000")
		l2.stream("198.51.100.7:5000", 1, 6, 150*time.Millisecond)
		if l2.rtp("10.0.0.5:4000", 2, 1, 1500*time.Millisecond) {
			t.Fatal("the signalled address took over after the window")
		}
	})
	t.Run("after the window nothing new is learned but the signalled address", func(t *testing.T) {
		l := newLearner(t, "10.0.0.5:4000")
		if taken, _ := l.stream("10.0.0.5:4100", 1, 10, 1100*time.Millisecond); taken != 0 {
			t.Fatalf("learned after the window (%d packets)", taken)
		}
		if !l.rtp("10.0.0.5:4000", 2, 1, 2*time.Second) {
			t.Fatal("the signalled address refused after the window with nothing learned")
		}
	})
	t.Run("RTCP on the RTP port never starts a probation", func(t *testing.T) {
		l := newLearner(t, "10.0.0.5:4000")
		for i := range 10 {
			if l.s.accept(l.sd, netip.MustParseAddrPort("10.0.0.5:4100"), nil, l.start.Add(time.Duration(i)*10*time.Millisecond)) {
				t.Fatal("multiplexed RTCP from an unknown port taken")
			}
		}
		if !l.s.accept(l.sd, netip.MustParseAddrPort("10.0.0.5:4000"), nil, l.start) {
			t.Fatal("multiplexed RTCP from the signalled address refused")
		}
	})
	t.Run("a side without a description learns nothing", func(t *testing.T) {
		l := newLearner(t, "10.0.0.5:4000")
		l.sd = l.s.b // the callee has not answered
		if taken, _ := l.stream("10.0.0.9:4000", 1, 20, 200*time.Millisecond); taken != 0 {
			t.Fatalf("the callee's port took %d packets before the callee described its media", taken)
		}
	})
	t.Run("a new description: another address forgets, the same keeps", func(t *testing.T) {
		l := newLearner(t, "10.0.0.5:4000")
		l.rtp("10.0.0.5:4000", 1, 1, 0)
		l.s.Rewrite(true, sdpAt("10.0.0.5:4000", "a=sendonly\r\n")) // hold: same address
		if got := l.source(); got != netip.MustParseAddrPort("10.0.0.5:4000") {
			t.Fatalf("same address: learned source %v, want kept", got)
		}
		l.s.Rewrite(true, sdpAt("10.0.0.5:4002", ""))
		if got := l.source(); got.IsValid() {
			t.Fatalf("moved: learned source %v, want forgotten", got)
		}
		if l.rtp("10.0.0.5:4000", 1, 2, 0) {
			t.Fatal("the old address taken after the side moved")
		}
	})
}

// A caller behind NAT whose call rings longer than the window still gets its audio through: its
// learning starts again when the callee's answer arrives (its media starts then).
func TestSourceLearningStartsAtTheAnswer(t *testing.T) {
	r := newTestRelay(t, 2, Config{LatchWindow: 200 * time.Millisecond, LatchDelay: 20 * time.Millisecond, Timeout: -1})
	s, err := r.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Rewrite(true, sdpAt("192.168.1.20:4000", ""))
	time.Sleep(300 * time.Millisecond) // ringing, past the window
	s.Rewrite(false, sdpAt("10.1.1.1:5000", ""))
	h := rtp.Header{Version: 2, SSRC: 1}
	now := time.Now().Add(50 * time.Millisecond)
	taken := false
	for i := range 6 {
		h.SequenceNumber = uint16(i + 1)
		taken = s.accept(s.a, netip.MustParseAddrPort("198.51.100.7:5000"), &h, now.Add(time.Duration(i)*10*time.Millisecond)) || taken
	}
	if !taken {
		t.Fatal("the NAT'd caller was not learned after the answer")
	}
	// The callee's own window is not reopened by the caller's later description once learned.
	h.SequenceNumber = 1
	s.accept(s.b, netip.MustParseAddrPort("10.1.1.1:5000"), &h, time.Now())
	time.Sleep(250 * time.Millisecond)
	s.Rewrite(true, sdpAt("192.168.1.20:4000", "")) // a re-INVITE from the caller
	if s.accept(s.b, netip.MustParseAddrPort("10.1.1.1:5100"), &h, time.Now()) {
		t.Fatal("the callee's port took a new source after the caller's re-INVITE")
	}
}

// sprayer sends RTP (one steady stream per port: SSRC 0xbad, consecutive sequence numbers) and
// RTCP to every port of lo-hi, over and over, until stopped; it counts what it receives.
type sprayer struct {
	conn     *net.UDPConn
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	received int
}

func spray(t *testing.T, ip net.IP, lo, hi int) *sprayer {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
	if err != nil {
		t.Skipf("cannot bind %v: %v", ip, err)
	}
	sp := &sprayer{conn: c, stop: make(chan struct{})}
	sp.wg.Add(2)
	go func() { // send
		defer sp.wg.Done()
		seq := make([]uint16, hi-lo+1)
		rtcpPkt := []byte{0x80, 201, 0, 1, 0, 0, 0x0b, 0xad}
		for {
			for port := lo; port <= hi; port++ {
				seq[port-lo]++
				pkt, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq[port-lo], Timestamp: uint32(seq[port-lo]) * 160,
					SSRC: 0xbad}, Payload: []byte("injected")}).Marshal()
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
	go func() { // receive: anything at all is a leak
		defer sp.wg.Done()
		buf := make([]byte, 1500)
		for {
			if _, _, err := c.ReadFromUDP(buf); err != nil {
				return
			}
			sp.mu.Lock()
			sp.received++
			sp.mu.Unlock()
		}
	}()
	t.Cleanup(sp.close)
	return sp
}

func (sp *sprayer) close() {
	select {
	case <-sp.stop:
		return
	default:
	}
	close(sp.stop)
	sp.conn.Close()
	sp.wg.Wait()
}

func (sp *sprayer) got() int {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.received
}

// A third host spraying every port of the relay's range, before the call and during it, gets
// nothing and injects nothing: each phone hears only the other, and the relay counts the drops.
func TestRelaySprayedPortsGetNothing(t *testing.T) {
	const pairs = 4
	lo := freeRange(t, 2*pairs)
	ports, err := NewPorts(net.IPv4(127, 0, 0, 1), lo, lo+2*pairs-1)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRelay(Config{Ports: ports, LatchDelay: 200 * time.Millisecond, Timeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	sp := spray(t, net.IPv4(127, 0, 0, 3), lo, lo+2*pairs-1)
	time.Sleep(50 * time.Millisecond) // spraying before the call

	a, b := newEndpoint(t), newEndpoint(t)
	s, err := r.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Rewrite(true, a.sdp(""))
	s.Rewrite(false, b.sdp(""))
	pa, pb := s.Ports()

	// The phones talk for a while, each packet answered before the next.
	const rounds = 20
	for i := range rounds {
		want := fmt.Sprintf("a%d", i)
		a.send(pa, uint16(i+1), want)
		if got, from := recvSkipping(b); got != want || from != pb {
			t.Fatalf("round %d: callee got %q from %d, want %q from %d", i, got, from, want, pb)
		}
		want = fmt.Sprintf("b%d", i)
		b.send(pb, uint16(i+1), want)
		if got, from := recvSkipping(a); got != want || from != pa {
			t.Fatalf("round %d: caller got %q from %d, want %q from %d", i, got, from, want, pa)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	sp.close()
	for _, e := range []*endpoint{a, b} {
		if got, _ := e.recv(50 * time.Millisecond); got != "" {
			t.Fatalf("a phone got a further %q", got)
		}
	}
	if n := sp.got(); n != 0 {
		t.Fatalf("the sprayer received %d datagrams", n)
	}
	ca, cb := s.Stats()
	if ca.Strangers == 0 || cb.Strangers == 0 || ca.Packets != rounds || cb.Packets != rounds {
		t.Fatalf("caller %+v, callee %+v: want %d packets each and the spray counted as strangers", ca, cb, rounds)
	}
	t.Logf("dropped from the sprayer: %d at the caller's ports, %d at the callee's", ca.Strangers, cb.Strangers)
	s.Close()
	goleak.VerifyNone(t)
}

// recvSkipping is recv, which must not see the sprayer's payload.
func recvSkipping(e *endpoint) (string, int) {
	got, from := e.recv(time.Second)
	if strings.Contains(got, "injected") {
		e.t.Fatalf("a phone got the sprayer's packet from port %d", from)
	}
	return got, from
}

// streamFrom sends RTP from e to port every 10 ms until stop is closed, sequence numbers from 1.
func streamFrom(e *endpoint, port int, payload string, stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	for seq := uint16(1); ; seq++ {
		p := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 80, SSRC: 0x77}, Payload: []byte(payload)}
		raw, _ := p.Marshal()
		e.conn.WriteToUDP(raw, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		select {
		case <-stop:
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// A phone behind NAT: its description names a private address it does not send from. After
// LatchDelay and a probation its stream is learned and the other side's audio goes back to where
// it comes from; a sprayer arriving afterwards does not take over.
func TestRelayLearnsPhoneBehindNAT(t *testing.T) {
	r := newTestRelay(t, 2, Config{LatchDelay: 100 * time.Millisecond, Timeout: -1})
	a, b := newEndpoint(t), newEndpoint(t)
	s, err := r.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Rewrite(true, sdpAt("192.168.1.20:4000", ""))
	s.Rewrite(false, b.sdp(""))
	pa, pb := s.Ports()
	start := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go streamFrom(a, pa, "natted", stop, &wg)
	defer func() { close(stop); wg.Wait() }()
	if got, _ := b.recv(2 * time.Second); got != "natted" {
		t.Fatalf("callee got %q", got)
	}
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Fatalf("a source on another host than the signalled one was learned after %v, within LatchDelay", waited)
	}
	b.send(pb, 1, "back")
	for {
		got, _ := a.recv(time.Second)
		if got == "back" {
			break
		}
		if got == "" {
			t.Fatal("the caller behind NAT never got the callee's audio")
		}
	}
	if ca, _ := s.Stats(); ca.Strangers == 0 {
		t.Fatal("the packets sent within LatchDelay were not counted as dropped")
	}

	// A host spraying the caller's port now, while the phone sends, gets nothing.
	sp := spray(t, net.IPv4(127, 0, 0, 3), pa, pa+1)
	time.Sleep(300 * time.Millisecond)
	b.send(pb, 2, "still yours")
	for {
		got, _ := a.recv(time.Second)
		if got == "still yours" {
			break
		}
		if got == "" {
			t.Fatal("the caller lost the callee's audio to the sprayer")
		}
	}
	sp.close()
	if n := sp.got(); n != 0 {
		t.Fatalf("the sprayer received %d datagrams", n)
	}
}

// A phone behind a NAT that keeps its address but not its port (its SDP names its own address
// and another port) is learned after the probation alone.
func TestRelayLearnsOtherPort(t *testing.T) {
	r := newTestRelay(t, 2, Config{LatchDelay: time.Hour, Timeout: -1})
	a, b := newEndpoint(t), newEndpoint(t)
	unused := newEndpoint(t) // the port the caller's SDP names; it never sends
	s, err := r.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Rewrite(true, unused.sdp(""))
	s.Rewrite(false, b.sdp(""))
	pa, pb := s.Ports()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go streamFrom(a, pa, "other port", stop, &wg)
	defer func() { close(stop); wg.Wait() }()
	if got, _ := b.recv(2 * time.Second); got != "other port" {
		t.Fatalf("callee got %q", got)
	}
	b.send(pb, 1, "back")
	for {
		got, _ := a.recv(time.Second)
		if got == "back" {
			break
		}
		if got == "" {
			t.Fatal("the callee's audio did not reach the port the caller sends from")
		}
	}
}

// A re-INVITE moving a side to a new address: the new address is learned at once, and the old
// one is a stranger from then on.
func TestRelayRelearnsAfterMove(t *testing.T) {
	r := newTestRelay(t, 2, Config{Timeout: -1})
	a, b, a2 := newEndpoint(t), newEndpoint(t), newEndpoint(t)
	s, pa, pb := callSession(t, r, a, b)
	a.send(pa, 1, "first")
	if got, _ := b.recv(time.Second); got != "first" {
		t.Fatalf("callee got %q", got)
	}
	if _, err := s.Rewrite(true, a2.sdp("")); err != nil {
		t.Fatal(err)
	}
	b.send(pb, 1, "to the new address")
	if got, _ := a2.recv(time.Second); got != "to the new address" {
		t.Fatalf("the moved caller got %q", got)
	}
	a2.send(pa, 1, "moved")
	if got, _ := b.recv(time.Second); got != "moved" {
		t.Fatalf("callee got %q", got)
	}
	a.send(pa, 2, "old")
	a2.send(pa, 2, "new")
	if got, _ := b.recv(time.Second); got != "new" {
		t.Fatalf("callee got %q from the caller's old address", got)
	}
	if ca, _ := s.Stats(); ca.Strangers != 1 {
		t.Fatalf("caller strangers %d, want the old address's packet", ca.Strangers)
	}
}
