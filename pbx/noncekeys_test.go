package pbx

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

// TestNonceKeysGenerations: a nonce's key is the one of its time stamp's generation, fetched once;
// generations far from now are never fetched (a forged time stamp cannot make the store create
// keys); while the store fails, a local key signs and no fetch is tried for keyRetry.
func TestNonceKeysGenerations(t *testing.T) {
	var asked []int64
	fail := false
	fetch := func(_ context.Context, g int64) ([]byte, error) {
		asked = append(asked, g)
		if fail {
			return nil, errors.New("database away")
		}
		return []byte{byte(g), 1, 2, 3}, nil
	}
	k := newNonceKeys(5*time.Minute, fetch)
	now := time.Date(2026, 11, 30, 10, 30, 0, 0, time.UTC)
	cur := k.generation(now)

	a, ok := k.key(now, now)
	if !ok || !bytes.Equal(a, []byte{byte(cur), 1, 2, 3}) {
		t.Fatalf("current generation: %v %v", a, ok)
	}
	prev, ok := k.key(now.Add(-keyPeriod), now)
	if !ok || bytes.Equal(prev, a) {
		t.Fatalf("previous generation: %v %v, want another key", prev, ok)
	}
	k.key(now.Add(time.Second), now) // same generation: cached
	if len(asked) != 2 {
		t.Fatalf("fetched %v, want the two generations once each", asked)
	}
	for _, forged := range []time.Time{now.Add(-3 * keyPeriod), now.Add(50 * 365 * 24 * time.Hour), time.Unix(0, 0)} {
		if _, ok := k.key(forged, now); ok {
			t.Errorf("a key for a nonce stamped %v", forged)
		}
	}
	if len(asked) != 2 {
		t.Fatalf("fetched %v after forged time stamps", asked)
	}

	fail = true
	next := now.Add(keyPeriod)
	local, ok := k.key(next, next)
	if !ok || !bytes.Equal(local, k.local) {
		t.Fatalf("store away: %v %v, want the local key", local, ok)
	}
	k.key(next, next.Add(time.Second))
	if len(asked) != 3 {
		t.Fatalf("fetched %v while the store was failing, want one try per keyRetry", asked)
	}
	fail = false
	if got, _ := k.key(next, next.Add(keyRetry)); bytes.Equal(got, k.local) || len(asked) != 4 {
		t.Fatalf("after keyRetry: local key %v, fetched %v", bytes.Equal(got, k.local), asked)
	}
}
