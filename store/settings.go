package store

import (
	"context"
	"sync"
	"time"
)

// Extension settings are cached (cache.go); a change made through this Store invalidates its
// entry at once. A change made by another process (the officepbx CLI, another node sharing the
// database) raises settings_version (migration 00005) in the database, and a look-up asks for that
// version at most every settingsCheck: when it moved, the extension cache is emptied, so the
// change applies to the next call rather than when the cached entry expires.
const (
	settingsCheck = 100 * time.Millisecond
	// settingsRetry is the pause after a check the database did not answer: while it is away the
	// cache serves (stale if need be) without every look-up waiting for a failing query.
	settingsRetry = time.Second
	// settingsWait bounds one check, so that a look-up is never held long by it.
	settingsWait = 250 * time.Millisecond
)

// settingsWatch remembers the settings version this Store last saw.
type settingsWatch struct {
	mu      sync.Mutex
	next    time.Time // no check before this
	version int64
	known   bool
}

// bumpSettings records a change of extension settings for the other processes sharing the
// database. A failure is not the change's: the others then see it when their entries expire.
func (s *Store) bumpSettings(ctx context.Context) {
	err := s.db.WithContext(ctx).Exec("UPDATE settings_version SET version = version + 1 WHERE id = 1").Error
	if err != nil {
		s.opt.log.Warn("settings change not announced: other processes see it when their cache expires", "error", err)
	}
}

// freshSettings empties the extension cache when another process changed settings since the last
// check. Only one look-up checks at a time; the others go on with the cache.
func (s *Store) freshSettings(ctx context.Context) {
	w := &s.settings
	if s.opt.cacheTTL <= 0 || !w.mu.TryLock() {
		return
	}
	defer w.mu.Unlock()
	now := time.Now()
	if now.Before(w.next) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, settingsWait)
	defer cancel()
	var version int64
	err := s.db.WithContext(ctx).Raw("SELECT version FROM settings_version WHERE id = 1").Scan(&version).Error
	if err != nil {
		w.next = now.Add(settingsRetry)
		return
	}
	w.next = now.Add(settingsCheck)
	if w.known && version != w.version {
		s.exts.invalidateAll()
	}
	w.version, w.known = version, true
}
