package store

import (
	"context"
	"sync"
	"time"
)

// Extension settings are cached (cache.go); a change made through this Store invalidates its
// entry at once. A change made by another process (the officepbx CLI, another node sharing the
// database) raises settings_version (migration 00005) in the database. A watcher goroutine of the
// Store reads that version every settingsCheck and empties the extension cache when it moved, so
// the change applies to the next call rather than when the cached entry expires. It runs beside
// the look-ups, never in their way: a database that is slow or away delays only the watcher.
const (
	settingsCheck = 100 * time.Millisecond
	// settingsWait bounds one check; a check that fails is simply tried again at the next tick.
	settingsWait = 2 * time.Second
)

// settingsWatch is the watcher's state.
type settingsWatch struct {
	stop    chan struct{}
	done    sync.WaitGroup
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

// watchSettings starts the watcher; stopSettings (from Close) ends it. It also reads the
// voicemail version for WatchVoicemail (vmwatch.go).
func (s *Store) watchSettings() {
	w := &s.settings
	w.stop = make(chan struct{})
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		tick := time.NewTicker(settingsCheck)
		defer tick.Stop()
		for {
			s.checkSettings()
			select {
			case <-tick.C:
			case <-w.stop:
				return
			}
		}
	}()
}

func (s *Store) stopSettings() {
	if s.settings.stop != nil {
		close(s.settings.stop)
		s.settings.done.Wait()
	}
}

// checkSettings reads the settings version and empties the extension cache when it moved since
// the last check. Failures are not logged: the database being away is reported by the look-ups.
func (s *Store) checkSettings() {
	ctx, cancel := context.WithTimeout(context.Background(), settingsWait)
	defer cancel()
	quiet := s.quietDB()
	s.checkVoicemail(ctx, quiet)
	if s.opt.cacheTTL <= 0 {
		return
	}
	var version int64
	if err := quiet.WithContext(ctx).Raw("SELECT version FROM settings_version WHERE id = 1").Scan(&version).Error; err != nil {
		return
	}
	w := &s.settings
	if w.known && version != w.version {
		s.exts.invalidateAll()
	}
	w.version, w.known = version, true
}
