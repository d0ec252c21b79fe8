package store

import (
	"sync"
	"sync/atomic"
	"time"
)

// cache holds hot look-ups (extensions by number, bindings by extension) so that a call does not
// pay a database round trip per step.
//
// While the database does not answer, an entry that has expired is still served for up to
// staleFor (stale-if-error, RFC 5861's idea): phones that registered keep calling each other
// through an outage instead of getting 503 once the TTL has passed. A look-up the cache never
// saw still fails.
//
// Writes through this Store invalidate the key at once. Changes made by another process (the
// officepbx CLI, a second PBX node) are announced by Postgres NOTIFY and expire the entries
// within milliseconds (listen.go); without notifications (SQLite, or the listening connection
// down) changes to extensions are seen at most settingsCheck after them (settings.go), and
// changes to bindings after at most the TTL. A fill that raced with an invalidation is discarded:
// a reader notes the generation before it queries the database and stores its result only if no
// invalidation happened since, so a stale row never outlives a write of this process. A fill that
// raced only with a notification is kept expired: served only while the database is away.
type cache[V any] struct {
	ttl time.Duration
	now func() time.Time

	mu  sync.RWMutex
	gen uint64 // invalidations (this process's writes) count in units of hardGen, expires in ones
	m   map[string]cacheEntry[V]

	hits, misses, stales atomic.Int64
}

type cacheEntry[V any] struct {
	v       V
	found   bool // false: a remembered "not found"
	expires time.Time
}

func newCache[V any](ttl time.Duration, now func() time.Time) *cache[V] {
	return &cache[V]{ttl: ttl, now: now, m: make(map[string]cacheEntry[V])}
}

// get returns the cached value, whether it was found in the database, and whether the cache had
// a live entry at all. On a miss it returns the generation to hand to put.
func (c *cache[V]) get(key string) (v V, found, ok bool, gen uint64) {
	if c.ttl <= 0 {
		c.misses.Add(1)
		return v, false, false, 0
	}
	c.mu.RLock()
	e, hit := c.m[key]
	gen = c.gen
	c.mu.RUnlock()
	if hit && c.now().Before(e.expires) {
		c.hits.Add(1)
		return e.v, e.found, true, gen
	}
	c.misses.Add(1)
	return v, false, false, gen
}

// generation returns the current generation, for a fill that does not start with get.
func (c *cache[V]) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

func (c *cache[V]) put(key string, gen uint64, v V, found bool) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	expires := c.now().Add(c.ttl)
	switch {
	case gen == c.gen:
	case gen>>32 == c.gen>>32:
		// Only an expire (another process's change) came in between: the row read may be older
		// than that change, so it is kept for stale service only, unless a fresher entry is
		// there already.
		if e, ok := c.m[key]; ok && c.now().Before(e.expires) {
			return
		}
		expires = c.now().Add(-time.Nanosecond)
	default:
		return // an invalidation by this process came in between
	}
	c.m[key] = cacheEntry[V]{v: v, found: found, expires: expires}
	if len(c.m) > 4*cacheSweepAt && len(c.m)%cacheSweepAt == 0 {
		c.sweepLocked()
	}
}

// cacheSweepAt bounds the map: a scanner trying random numbers fills it with negative entries.
const cacheSweepAt = 4096

// staleFor is how long after its expiry an entry may still be served while the database is away.
const staleFor = time.Hour

func (c *cache[V]) sweepLocked() {
	now := c.now()
	for k, e := range c.m {
		// Negative entries go as soon as they expire (a scanner's); found ones are kept for
		// stale service.
		if !now.Before(e.expires) && (!e.found || !now.Before(e.expires.Add(staleFor))) {
			delete(c.m, k)
		}
	}
}

// stale returns an entry that expired less than staleFor ago (or a live one), for use while the
// database does not answer. Remembered "not found" entries are not served stale.
func (c *cache[V]) stale(key string) (v V, ok bool) {
	if c.ttl <= 0 {
		return v, false
	}
	c.mu.RLock()
	e, hit := c.m[key]
	c.mu.RUnlock()
	if !hit || !e.found || !c.now().Before(e.expires.Add(staleFor)) {
		return v, false
	}
	c.stales.Add(1)
	return e.v, true
}

func (c *cache[V]) invalidate(key string) {
	c.mu.Lock()
	c.gen += hardGen
	delete(c.m, key)
	c.mu.Unlock()
}

func (c *cache[V]) invalidateAll() {
	c.mu.Lock()
	c.gen += hardGen
	clear(c.m)
	c.mu.Unlock()
}

// hardGen is the generation step of an invalidation: a fill that raced with one is discarded,
// while one that raced only with expires (below hardGen) is kept for stale service.
const hardGen = 1 << 32

// expire ends the freshness of key's entry but keeps it for stale service: a change another
// process announced (listen.go). The next look-up asks the database, and is served the entry
// only while the database does not answer. Fills begun before are discarded, as after
// invalidate.
func (c *cache[V]) expire(key string) {
	c.mu.Lock()
	c.gen++
	if e, ok := c.m[key]; ok {
		e.expires = c.now().Add(-time.Nanosecond)
		c.m[key] = e
	}
	c.mu.Unlock()
}

// expireAll is expire for every entry.
func (c *cache[V]) expireAll() {
	c.mu.Lock()
	c.gen++
	past := c.now().Add(-time.Nanosecond)
	for k, e := range c.m {
		e.expires = past
		c.m[k] = e
	}
	c.mu.Unlock()
}
