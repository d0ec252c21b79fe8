package pbx

import (
	"log/slog"
	"sync"
	"time"
)

// sometimes lets a kind of log line through at most burst times (1 when zero) per interval, and
// counts the lines it held back, so that a flood of bad input, refused connections or accept
// errors cannot flood the log.
type sometimes struct {
	every time.Duration
	burst int

	mu      sync.Mutex
	start   time.Time // the current interval's beginning
	written int
	held    int
}

// allow says whether to log now, and how many lines were held back before this one.
func (s *sometimes) allow(now time.Time) (bool, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var held int
	if s.start.IsZero() || now.Sub(s.start) >= s.every {
		held, s.start, s.written, s.held = s.held, now, 0, 0
	}
	if s.written >= max(s.burst, 1) {
		s.held++
		return false, 0
	}
	s.written++
	return true, held
}

// logLimiter writes each kind of bad-input line (by message) at most burst times a second.
type logLimiter struct {
	log   *slog.Logger
	burst int
	now   func() time.Time

	mu    sync.Mutex
	kinds map[string]*sometimes
}

func newLogLimiter(log *slog.Logger, burst int, now func() time.Time) *logLimiter {
	return &logLimiter{log: log, burst: burst, now: now, kinds: map[string]*sometimes{}}
}

// info writes msg at info level unless too many lines of the same msg came this second; the
// first line of the next second says how many were held back.
func (l *logLimiter) info(msg string, args ...any) {
	l.mu.Lock()
	s, ok := l.kinds[msg]
	if !ok {
		s = &sometimes{every: time.Second, burst: l.burst}
		l.kinds[msg] = s
	}
	l.mu.Unlock()
	write, held := s.allow(l.now())
	if held > 0 {
		l.log.Info("log lines held back", "msg", msg, "count", held)
	}
	if write {
		l.log.Info(msg, args...)
	}
}

// badInputLines is how many lines a second each kind of bad-input message may write.
const badInputLines = 10
