package pbx

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestSipgoLogLimited: sipgo's lines go through the bad-input limit, with long values cut.
func TestSipgoLogLimited(t *testing.T) {
	var out bytes.Buffer
	now := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	log := slog.New(newLimitHandler(slog.NewTextHandler(&out, nil), func() time.Time { return now })).With("component", "sipgo")
	garbage := strings.Repeat("x", 5000)
	for range 30 {
		log.Error("failed to parse", "data", garbage)
	}
	now = now.Add(time.Second)
	log.Error("failed to parse", "data", "short")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if n := strings.Count(out.String(), `level=ERROR msg="failed to parse"`); n != badInputLines+1 {
		t.Fatalf("%d lines of the message, want %d:\n%s", n, badInputLines+1, out.String())
	}
	if !strings.Contains(out.String(), `msg="log lines held back" component=sipgo msg="failed to parse" count=20`) {
		t.Fatalf("no held-back count:\n%s", out.String())
	}
	for _, l := range lines {
		if len(l) > sipLogValue+200 || !strings.Contains(l, "component=sipgo") {
			t.Fatalf("line of %d bytes (values not cut, or attributes lost): %.300s", len(l), l)
		}
	}
}
