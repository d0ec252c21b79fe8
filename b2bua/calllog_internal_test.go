package b2bua

import (
	"bytes"
	"log/slog"
	"regexp"
	"testing"
)

// TestCallLoggerWritesWhatWithWrites: the call's logger prints the same line as With("call_id")
// would, attributes, groups and the logger's own attributes included.
func TestCallLoggerWritesWhatWithWrites(t *testing.T) {
	var got, want bytes.Buffer
	opts := &slog.HandlerOptions{Level: slog.LevelDebug}
	base := func(b *bytes.Buffer) *slog.Logger {
		return slog.New(slog.NewTextHandler(b, opts)).With("component", "b2bua")
	}
	timeField := regexp.MustCompile(`time=\S+ `)
	for _, write := range []func(*slog.Logger){
		func(l *slog.Logger) { l.Info("answered", "status", 200) },
		func(l *slog.Logger) { l.With("target", "sip:101@h").Warn("challenge") },
		func(l *slog.Logger) { l.WithGroup("leg").Debug("ringing", "ext", "101") },
	} {
		got.Reset()
		want.Reset()
		write(callLogger(base(&got), "abc@h"))
		write(base(&want).With("call_id", "abc@h"))
		g, w := timeField.ReplaceAllString(got.String(), ""), timeField.ReplaceAllString(want.String(), "")
		if g != w || g == "" {
			t.Errorf("call logger wrote %q, With writes %q", g, w)
		}
	}
	if callLogger(slog.New(slog.NewTextHandler(&got, nil)), "x").Enabled(t.Context(), slog.LevelDebug) {
		t.Error("debug enabled on an info handler")
	}
}
