// Package pinguard counts wrong PINs (voicemail mailboxes, conference rooms) per key across
// calls, and locks a key out for a while once it failed too often, so a PIN cannot be guessed by
// calling again and again.
package pinguard

import (
	"sync"
	"time"
)

// Defaults of a Guard.
const (
	DefaultLimit = 10               // wrong PINs in a row that lock the key
	DefaultLock  = 15 * time.Minute // the first lockout; each further one doubles, up to MaxLock
	MaxLock      = 24 * time.Hour
	maxKeys      = 65536 // past this, keys neither locked nor failing recently are forgotten
)

// Guard counts failures per key. The zero value is not usable: use New.
type Guard struct {
	limit int
	lock  time.Duration
	now   func() time.Time

	mu   sync.Mutex
	keys map[string]*entry
}

type entry struct {
	count    int       // wrong PINs since the last success or lockout
	lockouts int       // lockouts so far: each doubles the next
	until    time.Time // locked until
	last     time.Time // the last failure
}

// New returns a guard locking a key for lock after limit failures in a row (defaults for zero
// values); now is the clock (nil: time.Now).
func New(limit int, lock time.Duration, now func() time.Time) *Guard {
	if limit <= 0 {
		limit = DefaultLimit
	}
	if lock <= 0 {
		lock = DefaultLock
	}
	if now == nil {
		now = time.Now
	}
	return &Guard{limit: limit, lock: lock, now: now, keys: map[string]*entry{}}
}

// Locked reports whether key is locked out, and until when.
func (g *Guard) Locked(key string) (bool, time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.keys[key]
	if e == nil || !g.now().Before(e.until) {
		return false, time.Time{}
	}
	return true, e.until
}

// Fail counts a wrong PIN for key; when it locks key it returns the lockout's end (else zero).
func (g *Guard) Fail(key string) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	g.prune(now)
	e := g.keys[key]
	if e == nil {
		e = &entry{}
		g.keys[key] = e
	}
	e.count++
	e.last = now
	if e.count < g.limit {
		return time.Time{}
	}
	d := g.lock << min(e.lockouts, 10)
	if d > MaxLock || d <= 0 {
		d = MaxLock
	}
	e.count, e.until = 0, now.Add(d)
	e.lockouts++
	return e.until
}

// Succeed forgets key's failures (a right PIN).
func (g *Guard) Succeed(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.keys, key)
}

// prune forgets stale keys once there are many.
func (g *Guard) prune(now time.Time) {
	if len(g.keys) < maxKeys {
		return
	}
	for k, e := range g.keys {
		if !now.Before(e.until) && now.Sub(e.last) > MaxLock {
			delete(g.keys, k)
		}
	}
}

// SetLimit changes the number of wrong PINs in a row that lock a key (tests).
func (g *Guard) SetLimit(limit int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.limit = max(limit, 1)
}
