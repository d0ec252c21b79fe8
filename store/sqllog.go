package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// sqlSlow is how long a statement may take before it is logged as slow.
const sqlSlow = 200 * time.Millisecond

// sqlLogger logs failed and slow statements through slog. It stands in front of gorm's slog
// logger because that one renders every statement with its arguments (logger.ExplainSQL)
// before it decides whether to log it: a tenth of the CPU of writing a call record went there.
type sqlLogger struct {
	logger.Interface // gorm's slog logger: Info, Warn, Error, and the statements that are logged
	level            logger.LogLevel
	log              *slog.Logger
	limit            *lineLimit // failed and slow statements, shared by the logger's LogMode copies
}

func newSQLLogger(log *slog.Logger) logger.Interface {
	level := logger.Warn
	return sqlLogger{logger.NewSlogLogger(log, logger.Config{SlowThreshold: sqlSlow, LogLevel: level, IgnoreRecordNotFoundError: true}),
		level, log, &lineLimit{now: time.Now}}
}

func (l sqlLogger) LogMode(level logger.LogLevel) logger.Interface {
	return sqlLogger{l.Interface.LogMode(level), level, l.log, l.limit}
}

// Info, Warn and Error format gorm's own messages, which are printf formats ("failed to
// initialize database, got error %v"): gorm's slog logger would log the format as it is, with
// the arguments beside it.
func (l sqlLogger) Info(ctx context.Context, msg string, data ...any) {
	l.Interface.Info(ctx, fmt.Sprintf(msg, data...))
}

func (l sqlLogger) Warn(ctx context.Context, msg string, data ...any) {
	l.Interface.Warn(ctx, fmt.Sprintf(msg, data...))
}

// gorm also logs the error it returns from Open; Open's caller reports that one, once.
func (l sqlLogger) Error(ctx context.Context, msg string, data ...any) {
	if strings.HasPrefix(msg, "failed to initialize database") {
		return
	}
	l.Interface.Error(ctx, fmt.Sprintf(msg, data...))
}

// Trace renders and logs a statement only when it is logged: it failed (but for "not found"),
// it was slow, or the level is Info.
func (l sqlLogger) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	failed := err != nil && !errors.Is(err, gorm.ErrRecordNotFound)
	if l.level <= logger.Silent || !failed && time.Since(begin) <= sqlSlow && l.level < logger.Info {
		return
	}
	if l.level < logger.Info {
		ok, held := l.limit.allow()
		if held > 0 {
			l.log.Warn("failed or slow SQL statements not logged", "count", held)
		}
		if !ok {
			return
		}
	}
	l.Interface.Trace(ctx, begin, fc, err)
}

// sqlLinesPerSecond bounds the failed and slow statements logged a second: a database that is
// away fails every look-up and every retry of the record writer (a 10 s outage logged ~350
// statements), and the first few say what there is to say.
const sqlLinesPerSecond = 5

// lineLimit lets sqlLinesPerSecond lines through each second and counts the rest.
type lineLimit struct {
	now func() time.Time

	mu     sync.Mutex
	window time.Time // start of the current second
	n      int       // lines let through in it
	held   int       // lines held back since the last report
}

// allow reports whether a line may be logged now, and how many were held back before it, once
// a new second has begun (0 otherwise).
func (l *lineLimit) allow() (ok bool, held int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Sub(l.window) >= time.Second {
		l.window, l.n = now, 0
		held, l.held = l.held, 0
	}
	if l.n >= sqlLinesPerSecond {
		l.held++
		return false, held
	}
	l.n++
	return true, held
}
