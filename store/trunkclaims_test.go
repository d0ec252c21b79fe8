package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/store"
)

// TestTrunkClaims: one node registers a trunk; another cannot claim it until it is released or
// its node stops renewing it; the holder's claim is renewed by claiming again.
func TestTrunkClaims(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		clock := newTestClock()
		a, b := twoNodes(t, dsn, clock)
		claim := func(s *store.Store, want bool) {
			t.Helper()
			if got, err := s.ClaimTrunk(ctx, s.NodeID(), "prov", 10*time.Second); err != nil || got != want {
				t.Fatalf("%s claims prov: %v, %v; want %v", s.NodeID(), got, err, want)
			}
		}
		claim(a, true)
		claim(b, false)
		clock.advance(8 * time.Second)
		claim(a, true) // renewed
		clock.advance(8 * time.Second)
		claim(b, false)
		if err := b.ReleaseTrunk(ctx, "b", "prov"); err != nil { // not the holder: no effect
			t.Fatal(err)
		}
		claim(b, false)
		if err := a.ReleaseTrunk(ctx, "a", "prov"); err != nil {
			t.Fatal(err)
		}
		claim(b, true)
		clock.advance(11 * time.Second) // b died
		claim(a, true)
		if err := a.ReleaseClaims(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		claim(b, true)
	})
}
