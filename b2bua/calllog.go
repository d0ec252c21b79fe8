package b2bua

import (
	"context"
	"log/slog"
)

// callLogger returns base's logger with every line naming the call. It is what
// base.With("call_id", id) logs, built for a held call's memory: slog's text and JSON handlers
// pre-render the attributes of With into a buffer of their own (about 450 bytes a call), while
// this adds the attribute when a line is written, which for a call happens a few times at most.
func callLogger(base *slog.Logger, id string) *slog.Logger {
	return slog.New(callHandler{h: base.Handler(), id: id})
}

// callHandler puts call_id first in each record it passes on to h.
type callHandler struct {
	h  slog.Handler
	id string
}

func (c callHandler) Enabled(ctx context.Context, l slog.Level) bool { return c.h.Enabled(ctx, l) }

func (c callHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(slog.String("call_id", c.id))
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(a)
		return true
	})
	return c.h.Handle(ctx, out)
}

func (c callHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return c.h.WithAttrs(append([]slog.Attr{slog.String("call_id", c.id)}, attrs...))
}

func (c callHandler) WithGroup(name string) slog.Handler {
	return c.h.WithAttrs([]slog.Attr{slog.String("call_id", c.id)}).WithGroup(name)
}
