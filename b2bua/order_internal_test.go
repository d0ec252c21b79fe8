package b2bua

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

func infoRequest(branch string) *sip.Request {
	req := sip.NewRequest(sip.INFO, sip.Uri{User: "100", Host: "127.0.0.1"})
	via := sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: "127.0.0.1", Port: 5060, Params: sip.NewParams()}
	via.Params.Add("branch", branch)
	req.AppendHeader(&via)
	return req
}

// TestArrivalsHandlerAheadOfStamp: a request whose handler reached wait before the reading
// goroutine stamped it still holds back the requests read after it. (CI once saw the keys
// "...809": the 0 was dispatched while the 9, whose handler had gone ahead of its stamp, was
// still on its way.)
func TestArrivalsHandlerAheadOfStamp(t *testing.T) {
	a := newArrivals()
	first, nine, zero := infoRequest("z9hG4bK-8"), infoRequest("z9hG4bK-9"), infoRequest("z9hG4bK-0")
	a.stamp(first)

	var mu sync.Mutex
	var order []string
	record := func(s string) {
		mu.Lock()
		order = append(order, s)
		mu.Unlock()
	}
	release := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // the 9's handler, before its stamp
		a.wait(nine)
		<-release
		record("9")
		a.done(nine)
	})
	waitFor(t, func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return slices.Contains(a.early[:], nine)
	})
	a.stamp(nine)
	a.stamp(zero)
	a.mu.Lock()
	i9, i0 := slices.Index(a.queue, nine), slices.Index(a.queue, zero)
	a.mu.Unlock()
	if i9 < 0 || i0 < i9 {
		t.Fatalf("queue places: 9 at %d, 0 at %d; want the 9 ahead", i9, i0)
	}
	wg.Go(func() {
		a.wait(zero)
		record("0")
		a.done(zero)
	})
	a.done(first)
	time.Sleep(20 * time.Millisecond) // room for a 0 that does not wait to overtake
	close(release)
	wg.Wait()
	if !slices.Equal(order, []string{"9", "0"}) {
		t.Fatalf("dispatched %v, want [9 0]", order)
	}
	if len(a.queue) != 0 {
		t.Fatalf("%d requests left queued", len(a.queue))
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 2 s")
		}
		time.Sleep(time.Millisecond)
	}
}
