package pbx

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
)

// TestLogLimiter: a flood of one kind of line writes burst lines a second; the next second's first
// line says how many were held back; other kinds are not held back by it.
func TestLogLimiter(t *testing.T) {
	var out b2buatest.LogBuffer
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	l := newLogLimiter(slog.New(slog.NewTextHandler(&out, nil)), 10, func() time.Time { return now })
	for range 25 {
		l.info("malformed request rejected", "src", "192.0.2.1:5060")
	}
	l.info("unparseable ACK dropped")
	if n := strings.Count(out.String(), "malformed request rejected"); n != 10 {
		t.Fatalf("%d lines in the first second, want 10", n)
	}
	now = now.Add(time.Second)
	l.info("malformed request rejected", "src", "192.0.2.1:5060")
	got := out.String()
	if !strings.Contains(got, `msg="log lines held back" msg="malformed request rejected" count=15`) ||
		strings.Count(got, "malformed request rejected") != 12 || !strings.Contains(got, "unparseable ACK dropped") {
		t.Fatalf("log:\n%s", got)
	}
}
