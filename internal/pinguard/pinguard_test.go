package pinguard

import (
	"testing"
	"time"
)

// Failures lock a key at the limit, for the lock time, doubling with each lockout; a success
// forgets them; keys are independent.
func TestGuard(t *testing.T) {
	now := time.Unix(1000, 0)
	g := New(3, time.Minute, func() time.Time { return now })
	for i := range 2 {
		if !g.Fail("a").IsZero() {
			t.Fatalf("locked after %d failures", i+1)
		}
	}
	g.Succeed("a")
	g.Fail("a")
	g.Fail("a")
	if locked, _ := g.Locked("a"); locked {
		t.Fatal("the success did not reset the count")
	}
	if until := g.Fail("a"); !until.Equal(now.Add(time.Minute)) {
		t.Fatalf("first lockout until %v", until)
	}
	if locked, _ := g.Locked("a"); !locked {
		t.Fatal("not locked")
	}
	if locked, _ := g.Locked("b"); locked {
		t.Fatal("another key locked")
	}
	now = now.Add(time.Minute)
	if locked, _ := g.Locked("a"); locked {
		t.Fatal("still locked after the lock time")
	}
	g.Fail("a")
	g.Fail("a")
	if until := g.Fail("a"); !until.Equal(now.Add(2 * time.Minute)) {
		t.Fatalf("second lockout until %v, want doubled", until)
	}
}
