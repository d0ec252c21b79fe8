package store

import (
	"context"
	"sync"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Message-waiting lamps must follow every change of a mailbox, including those made by another
// process (officepbx vm rm, another node that took the message). Every change raises
// voicemail_version (migration 00011); the settings watcher (settings.go) reads it at each of its
// checks while someone watches, and tells the watchers when it moved. Changes made through this
// Store are told at once as well.

// vmWatch is the voicemail watchers' state.
type vmWatch struct {
	mu      sync.Mutex
	fns     map[int]func()
	next    int
	version int64
	known   bool
}

// WatchVoicemail calls f after changes of voicemail messages: at once for a change made through
// this Store, within a fraction of a second for one made by another process sharing the
// database (without telling which mailbox changed: f re-reads what it shows). f must not block;
// it may be called more than once for one change. stop ends the calls. The first watcher reads
// the version the changes are counted from.
func (s *Store) WatchVoicemail(f func()) (stop func()) {
	w := &s.vm
	w.mu.Lock()
	if w.fns == nil {
		w.fns = map[int]func(){}
	}
	id := w.next
	w.next++
	w.fns[id] = f
	first := len(w.fns) == 1
	w.mu.Unlock()
	if first {
		ctx, cancel := context.WithTimeout(context.Background(), settingsWait)
		s.checkVoicemail(ctx, s.quietDB())
		cancel()
	}
	return func() {
		w.mu.Lock()
		delete(w.fns, id)
		w.mu.Unlock()
	}
}

// voicemailChanged announces a change of messages to the other processes and to this Store's
// watchers.
func (s *Store) voicemailChanged(ctx context.Context) {
	err := s.db.WithContext(ctx).Exec("UPDATE voicemail_version SET version = version + 1 WHERE id = 1").Error
	if err != nil {
		s.opt.log.Warn("voicemail change not announced to other processes", "error", err)
	}
	s.tellVoicemail()
}

func (s *Store) tellVoicemail() {
	w := &s.vm
	w.mu.Lock()
	fns := make([]func(), 0, len(w.fns))
	for _, f := range w.fns {
		fns = append(fns, f)
	}
	w.mu.Unlock()
	for _, f := range fns {
		f()
	}
}

// checkVoicemail reads voicemail_version, when someone watches, and tells the watchers when it
// moved since the last check.
func (s *Store) checkVoicemail(ctx context.Context, quiet *gorm.DB) {
	w := &s.vm
	w.mu.Lock()
	watched := len(w.fns) > 0
	w.mu.Unlock()
	if !watched {
		return
	}
	var version int64
	if err := quiet.WithContext(ctx).Raw("SELECT version FROM voicemail_version WHERE id = 1").Scan(&version).Error; err != nil {
		return
	}
	w.mu.Lock()
	moved := w.known && version != w.version
	w.version, w.known = version, true
	w.mu.Unlock()
	if moved {
		s.tellVoicemail()
	}
}

func (s *Store) quietDB() *gorm.DB {
	return s.db.Session(&gorm.Session{Logger: s.db.Logger.LogMode(logger.Silent)})
}
