package pbx

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// sipgo logs some bad input itself, through the logger the PBX gives it: a TCP connection whose
// bytes do not parse is logged at ERROR with the whole buffer, once per connection, beside the
// PBX's own rate limit for bad input. limitHandler puts sipgo's lines under the same rule: each
// message at most badInputLines times a second (then one line saying how many were held back),
// and string values cut to sipLogValue bytes.

// sipLogValue is the longest string value of a sipgo log line, in bytes.
const sipLogValue = 256

type limitHandler struct {
	next  slog.Handler
	state *limitState
}

type limitState struct {
	now   func() time.Time
	mu    sync.Mutex
	kinds map[string]*sometimes
}

func newLimitHandler(next slog.Handler, now func() time.Time) *limitHandler {
	return &limitHandler{next: next, state: &limitState{now: now, kinds: map[string]*sometimes{}}}
}

func (h *limitHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *limitHandler) Handle(ctx context.Context, r slog.Record) error {
	write, held := h.state.allow(r.Message)
	if held > 0 {
		note := slog.NewRecord(r.Time, r.Level, "log lines held back", 0)
		note.AddAttrs(slog.String("msg", r.Message), slog.Int("count", held))
		if err := h.next.Handle(ctx, note); err != nil {
			return err
		}
	}
	if !write {
		return nil
	}
	short := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if s := a.Value.Resolve(); s.Kind() == slog.KindString && len(s.String()) > sipLogValue {
			a.Value = slog.StringValue(s.String()[:sipLogValue] + "…")
		}
		short.AddAttrs(a)
		return true
	})
	return h.next.Handle(ctx, short)
}

func (h *limitHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &limitHandler{next: h.next.WithAttrs(attrs), state: h.state}
}

func (h *limitHandler) WithGroup(name string) slog.Handler {
	return &limitHandler{next: h.next.WithGroup(name), state: h.state}
}

func (s *limitState) allow(msg string) (bool, int) {
	s.mu.Lock()
	k, ok := s.kinds[msg]
	if !ok {
		k = &sometimes{every: time.Second, burst: badInputLines}
		s.kinds[msg] = k
	}
	s.mu.Unlock()
	return k.allow(s.now())
}
