package store

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestSQLLogLimited: a burst of failing statements logs a few lines a second, then one line that
// says how many were held back.
func TestSQLLogLimited(t *testing.T) {
	var buf bytes.Buffer
	l := newSQLLogger(slog.New(slog.NewTextHandler(&buf, nil))).(sqlLogger)
	now := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	l.limit.now = func() time.Time { return now }
	fail := errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")
	stmt := func() (string, int64) { return "SELECT * FROM extensions", 0 }
	for range 100 {
		l.Trace(context.Background(), now, stmt, fail)
	}
	if n := strings.Count(buf.String(), "connection refused"); n != sqlLinesPerSecond {
		t.Fatalf("%d failed statements logged in a second, want %d:\n%s", n, sqlLinesPerSecond, buf.String())
	}
	now = now.Add(time.Second)
	buf.Reset()
	l.Trace(context.Background(), now, stmt, fail)
	if !strings.Contains(buf.String(), "not logged") || !strings.Contains(buf.String(), "count=95") ||
		!strings.Contains(buf.String(), "connection refused") {
		t.Fatalf("the next second logs the count held back and the statement:\n%s", buf.String())
	}
}
