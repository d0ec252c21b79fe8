package pbx

import (
	"log/slog"
	"sync"
	"time"
)

// logLimiter keeps a flood of bad input from flooding the log: each kind of line is written at
// most burst times per second; the lines held back are counted and reported in one line when the
// next second's first line is written.
type logLimiter struct {
	log   *slog.Logger
	burst int
	now   func() time.Time

	mu    sync.Mutex
	kinds map[string]*logWindow
}

type logWindow struct {
	start      time.Time
	written    int
	suppressed int
}

func newLogLimiter(log *slog.Logger, burst int, now func() time.Time) *logLimiter {
	return &logLimiter{log: log, burst: burst, now: now, kinds: map[string]*logWindow{}}
}

// info writes msg at info level unless too many lines of the same msg came this second.
func (l *logLimiter) info(msg string, args ...any) {
	now := l.now()
	l.mu.Lock()
	w, ok := l.kinds[msg]
	if !ok {
		w = &logWindow{start: now}
		l.kinds[msg] = w
	}
	var held int
	if now.Sub(w.start) >= time.Second {
		held, w.start, w.written, w.suppressed = w.suppressed, now, 0, 0
	}
	write := w.written < l.burst
	if write {
		w.written++
	} else {
		w.suppressed++
	}
	l.mu.Unlock()
	if held > 0 {
		l.log.Info("log lines held back", "msg", msg, "count", held)
	}
	if write {
		l.log.Info(msg, args...)
	}
}

// badInputLines is how many lines a second each kind of bad-input message may write.
const badInputLines = 10
