package media

import (
	"errors"
	"net"
	"testing"
)

func TestPortsExhaustAndRelease(t *testing.T) {
	lo := freeRange(t, 6)
	p, err := NewPorts(net.IPv4(127, 0, 0, 1), lo, lo+5)
	if err != nil {
		t.Fatal(err)
	}
	if p.Free() != 3 {
		t.Fatalf("%d free pairs, want 3", p.Free())
	}
	var pairs []*Pair
	for range 3 {
		pr, err := p.Allocate()
		if err != nil {
			t.Fatal(err)
		}
		if pr.Port%2 != 0 || pr.rtp.localPort() != pr.Port || pr.rtcp.localPort() != pr.Port+1 {
			t.Fatalf("pair %d/%d: RTP must be even, RTCP the next port", pr.Port, pr.rtcp.localPort())
		}
		pairs = append(pairs, pr)
	}
	if _, err := p.Allocate(); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("exhausted range: %v", err)
	}
	first := pairs[0].Port
	pairs[0].Close()
	pairs[0].Close() // twice is harmless
	if p.Free() != 1 || p.InUse() != 2 {
		t.Fatalf("free %d in use %d after one release", p.Free(), p.InUse())
	}
	pr, err := p.Allocate()
	if err != nil || pr.Port != first {
		t.Fatalf("reallocated %v, %v", pr, err)
	}
	pr.Close()
	for _, pr := range pairs[1:] {
		pr.Close()
	}
	if p.Free() != 3 || p.InUse() != 0 {
		t.Fatalf("free %d in use %d at the end", p.Free(), p.InUse())
	}
}

func TestPortsSkipBusyPair(t *testing.T) {
	lo := freeRange(t, 4)
	busy, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: lo + 1})
	if err != nil {
		t.Skip("port taken meanwhile")
	}
	defer busy.Close()
	p, _ := NewPorts(net.IPv4(127, 0, 0, 1), lo, lo+3)
	pr, err := p.Allocate()
	if err != nil || pr.Port != lo+2 {
		t.Fatalf("got %v, %v; want the pair at %d", pr, err, lo+2)
	}
	pr.Close()
}

func TestNewPortsRefusesBadRanges(t *testing.T) {
	for _, r := range [][2]int{{100, 200}, {30000, 30000}, {60000, 70000}, {30001, 30001}} {
		if _, err := NewPorts(nil, r[0], r[1]); err == nil {
			t.Errorf("range %v accepted", r)
		}
	}
}

// freeRange finds n consecutive free UDP ports on 127.0.0.1 starting at an even port.
func freeRange(t *testing.T, n int) int {
	t.Helper()
	for base := 40000; base < 60000; base += 64 {
		ok := true
		for p := base; p < base+n; p++ {
			c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
			if err != nil {
				ok = false
				break
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
