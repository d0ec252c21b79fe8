package media

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"go.uber.org/goleak"
)

// Calls set up and ended from many goroutines at once, with packets flowing, each relay both
// ways; afterwards every port pair is back and no goroutine is left (the event loops end with
// their last call).
func TestRelayConcurrentCalls(t *testing.T) {
	const workers, rounds = 8, 5
	r := newTestRelay(t, 2*workers, Config{})
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers*rounds)
	for w := range workers {
		a, b := newEndpoint(t), newEndpoint(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range rounds {
				s, err := r.NewSession()
				if err != nil {
					errs <- err
					return
				}
				s.Rewrite(true, a.sdp(""))
				s.Rewrite(false, b.sdp(""))
				pa, pb := s.Ports()
				want := fmt.Sprintf("w%d r%d", w, round)
				a.send(pa, uint16(round), want)
				if got, from := b.recv(time.Second); got != want || from != pb {
					errs <- fmt.Errorf("worker %d round %d: callee got %q from %d", w, round, got, from)
				}
				b.send(pb, uint16(round), want+" back")
				if got, from := a.recv(time.Second); got != want+" back" || from != pa {
					errs <- fmt.Errorf("worker %d round %d: caller got %q from %d", w, round, got, from)
				}
				s.Close()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if free := r.Ports().Free(); free != 2*workers {
		t.Errorf("%d pairs free after every call ended, want %d", free, 2*workers)
	}
	goleak.VerifyNone(t)
}

func TestRelayIPv6(t *testing.T) {
	probe, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skip("no IPv6 loopback:", err)
	}
	probe.Close()
	lo := freeRange(t, 4)
	ports, err := NewPorts(net.IPv6loopback, lo, lo+3)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRelay(Config{Ports: ports})
	if err != nil {
		t.Fatal(err)
	}
	ep := func() *net.UDPConn {
		c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := ep(), ep()
	sdp6 := func(c *net.UDPConn) []byte {
		return fmt.Appendf(nil, "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\n",
			c.LocalAddr().(*net.UDPAddr).Port)
	}
	s, err := r.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	offer, err := s.Rewrite(true, sdp6(a))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Rewrite(false, sdp6(b)); err != nil {
		t.Fatal(err)
	}
	pa, pb := s.Ports()
	if !strings.Contains(string(offer), "c=IN IP6 ::1\r\n") {
		t.Fatalf("offer does not name the PBX's IPv6 address:\n%s", offer)
	}
	pkt, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: 1, SSRC: 9}, Payload: []byte("six")}).Marshal()
	buf := make([]byte, 1500)
	for _, dir := range []struct {
		from, to *net.UDPConn
		port     int
		wantFrom int
	}{{a, b, pa, pb}, {b, a, pb, pa}} {
		if _, err := dir.from.WriteToUDP(pkt, &net.UDPAddr{IP: net.IPv6loopback, Port: dir.port}); err != nil {
			t.Fatal(err)
		}
		dir.to.SetReadDeadline(time.Now().Add(time.Second))
		n, src, err := dir.to.ReadFromUDP(buf)
		if err != nil || n != len(pkt) || src.Port != dir.wantFrom || !src.IP.Equal(net.IPv6loopback) {
			t.Fatalf("got %d bytes from %v (%v), want %d from [::1]:%d", n, src, err, len(pkt), dir.wantFrom)
		}
	}
}

// A key press listener may end the call (an IVR hangs up on "#"): closing the session from the
// listener, which runs on the relay's loop, must not wait for that loop.
func TestRelayCloseFromKeyPress(t *testing.T) {
	r := newTestRelay(t, 2, Config{})
	a, b := newEndpoint(t), newEndpoint(t)
	s, pa, _ := callSession(t, r, a, b)
	closed := make(chan struct{})
	s.OnDTMF(func(bool, string) {
		s.Close()
		close(closed)
	})
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 101, SequenceNumber: 1, Timestamp: 80, SSRC: 5}, Payload: []byte{11, 0x8a, 0, 160}}
	raw, _ := p.Marshal()
	a.conn.WriteToUDP(raw, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: pa})
	select {
	case <-closed:
	case <-time.After(3 * time.Second):
		t.Fatal("closing the session from its key press listener did not return")
	}
	if free := r.Ports().Free(); free != 2 {
		t.Fatalf("%d pairs free, want 2", free)
	}
	goleak.VerifyNone(t)
}
