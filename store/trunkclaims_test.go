package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/store"
)

// TestTrunkClaims: one node registers a trunk; another cannot claim it until it is released or
// its node stops renewing it; the holder's claim is renewed by claiming again.
func TestTrunkClaims(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		clock := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
		var mu sync.Mutex
		now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
		advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
		a := open(t, dsn, store.WithNodeID("a"), store.WithClock(now))
		b := open(t, dsn, store.WithNodeID("b"), store.WithClock(now))
		claim := func(s *store.Store, want bool) {
			t.Helper()
			if got, err := s.ClaimTrunk(ctx, s.NodeID(), "prov", 10*time.Second); err != nil || got != want {
				t.Fatalf("%s claims prov: %v, %v; want %v", s.NodeID(), got, err, want)
			}
		}
		claim(a, true)
		claim(b, false)
		advance(8 * time.Second)
		claim(a, true) // renewed
		advance(8 * time.Second)
		claim(b, false)
		if err := b.ReleaseTrunk(ctx, "b", "prov"); err != nil { // not the holder: no effect
			t.Fatal(err)
		}
		claim(b, false)
		if err := a.ReleaseTrunk(ctx, "a", "prov"); err != nil {
			t.Fatal(err)
		}
		claim(b, true)
		advance(11 * time.Second) // b died
		claim(a, true)
		if err := a.ReleaseClaims(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		claim(b, true)
	})
}
