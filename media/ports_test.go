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

// Pairs come at random from the whole range: consecutive allocations are not consecutive pairs,
// every pair is reachable, none is handed out twice, and the range still runs out (ErrNoPorts).
func TestPortsRandomAllocation(t *testing.T) {
	const pairs = 32
	lo := freeRange(t, 2*pairs)
	p, err := NewPorts(net.IPv4(127, 0, 0, 1), lo, lo+2*pairs-1)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	var order []int
	var held []*Pair
	for range pairs {
		pr, err := p.Allocate()
		if err != nil {
			t.Fatal(err)
		}
		if seen[pr.Port] || pr.Port < lo || pr.Port > lo+2*pairs-2 || pr.Port%2 != 0 {
			t.Fatalf("pair %d handed out twice or outside %d-%d", pr.Port, lo, lo+2*pairs-1)
		}
		seen[pr.Port] = true
		order = append(order, pr.Port)
		held = append(held, pr)
	}
	if _, err := p.Allocate(); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("every pair in use: %v", err)
	}
	// In order, every step would be +2; at random, a step is +2 about once in as many steps as
	// there are free pairs. More than a quarter of them would mean order.
	steps := 0
	for i := 1; i < len(order); i++ {
		if order[i] == order[i-1]+2 {
			steps++
		}
	}
	if steps > len(order)/4 {
		t.Fatalf("pairs handed out nearly in order (%d of %d steps +2): %v", steps, len(order)-1, order)
	}
	for _, pr := range held {
		pr.Close()
	}
	if p.Free() != pairs || p.InUse() != 0 {
		t.Fatalf("free %d in use %d after all released", p.Free(), p.InUse())
	}
}

// A released pair rests: while other pairs are free it is not handed out again; when it is the
// only one free, it is.
func TestPortsQuarantine(t *testing.T) {
	const pairs = 8
	lo := freeRange(t, 2*pairs)
	p, err := NewPorts(net.IPv4(127, 0, 0, 1), lo, lo+2*pairs-1)
	if err != nil {
		t.Fatal(err)
	}
	first, err := p.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	released := first.Port
	first.Close()
	var held []*Pair
	for range pairs - 1 {
		pr, err := p.Allocate()
		if err != nil {
			t.Fatal(err)
		}
		if pr.Port == released {
			t.Fatalf("the pair released a moment ago (%d) was handed out while %d others were free", released, pairs-1)
		}
		held = append(held, pr)
	}
	// Only the resting pair is left: the range is not exhausted while it rests.
	pr, err := p.Allocate()
	if err != nil || pr.Port != released {
		t.Fatalf("with every other pair in use got %v, %v; want the resting pair %d", pr, err, released)
	}
	held = append(held, pr)
	for _, pr := range held {
		pr.Close()
	}

	// Once its quarantine is over, a pair is free like any other.
	p.mu.Lock()
	p.quarantine = 0
	p.mu.Unlock()
	pr, err = p.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	pr.Close()
	if p.Free() != pairs {
		t.Fatalf("%d free, want %d", p.Free(), pairs)
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
	// Below the kernel's ephemeral range (32768-60999 by default): a socket bound to port 0
	// anywhere on the machine cannot take a port between this probe and the relay's bind.
	for base := 21000; base < 32000; base += 64 {
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
