package pbx

import (
	"context"
	"crypto/rand"
	"sync"
	"time"
)

// nonceKeys are the HMAC keys that sign digest nonces. Time is cut into generations of
// keyPeriod; a nonce is signed with the key of the generation of its time stamp, so its own
// time stamp says which key checks it, and the nonce format needs no key number.
//
// With a shared store the keys come from the database (store.NonceKey): every node signs and
// checks with the same keys, so a REGISTER challenged by one node and answered to another is
// accepted. A new key starts every keyPeriod (rotation) while the keys of the two generations
// before stay (overlap): a nonce lives NonceTTL, at most keyPeriod. Only generations next to the
// current one are looked up, so a forged time stamp cannot make the PBX fetch or create keys.
// Without a shared store, or while the database cannot give a key, a key of this process signs.
type nonceKeys struct {
	period time.Duration
	fetch  func(ctx context.Context, generation int64) ([]byte, error) // nil: local keys only
	local  []byte

	mu     sync.RWMutex
	keys   map[int64][]byte
	failed time.Time // last failed fetch: the next waits a while
}

// keyPeriod is how long one nonce key signs; at least NonceTTL.
const keyPeriod = time.Hour

// keyRetry is how long after a failed fetch the local key is used without asking again.
const keyRetry = 5 * time.Second

// keyFetchWait bounds a fetch made for a request.
const keyFetchWait = time.Second

func newNonceKeys(ttl time.Duration, fetch func(context.Context, int64) ([]byte, error)) *nonceKeys {
	k := &nonceKeys{period: max(keyPeriod, ttl), fetch: fetch, local: make([]byte, 32), keys: make(map[int64][]byte)}
	_, _ = rand.Read(k.local)
	return k
}

func (k *nonceKeys) generation(t time.Time) int64 { return t.UnixNano() / int64(k.period) }

// key returns the key of the generation of t, relative to now; ok is false for a generation not
// next to now's (no key checks it).
func (k *nonceKeys) key(t, now time.Time) (key []byte, ok bool) {
	g, cur := k.generation(t), k.generation(now)
	if g < cur-1 || g > cur+1 {
		return nil, false
	}
	if k.fetch == nil {
		return k.local, true
	}
	k.mu.RLock()
	key, ok = k.keys[g]
	failed := k.failed
	k.mu.RUnlock()
	if ok {
		return key, true
	}
	if now.Sub(failed) < keyRetry {
		return k.local, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), keyFetchWait)
	defer cancel()
	return k.load(ctx, g, now), true
}

// load fetches the key of generation g, or returns the local key when the store cannot give it.
func (k *nonceKeys) load(ctx context.Context, g int64, now time.Time) []byte {
	key, err := k.fetch(ctx, g)
	k.mu.Lock()
	defer k.mu.Unlock()
	if err != nil {
		k.failed = now
		return k.local
	}
	k.keys[g] = key
	for old := range k.keys {
		if old < g-2 {
			delete(k.keys, old)
		}
	}
	return key
}

// prefetch loads the keys of the current and the next generation, so that requests find them.
func (k *nonceKeys) prefetch(ctx context.Context, now time.Time) {
	if k.fetch == nil {
		return
	}
	for _, g := range []int64{k.generation(now), k.generation(now) + 1} {
		k.mu.RLock()
		_, ok := k.keys[g]
		k.mu.RUnlock()
		if !ok {
			k.load(ctx, g, now)
		}
	}
}
