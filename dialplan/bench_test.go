package dialplan_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/dialplan"
)

// The dialplan's own cost per call: the same routing decision made by a Go Handler and by a Lua
// script, each run through b2bua.Engine.Handle on an INVITE whose transaction is a recorder (no
// sockets), so both include the same call set-up and differ only in the dialplan.

// recordTx is a server transaction that keeps the responses it is given.
type recordTx struct {
	mu    sync.Mutex
	codes []int
	done  chan struct{}
}

func newRecordTx() *recordTx { return &recordTx{done: make(chan struct{})} }

func (t *recordTx) Terminate()                         {}
func (t *recordTx) OnTerminate(sip.FnTxTerminate) bool { return true }
func (t *recordTx) Done() <-chan struct{}              { return t.done }
func (t *recordTx) Err() error                         { return nil }
func (t *recordTx) Acks() <-chan *sip.Request          { return nil }
func (t *recordTx) OnCancel(sip.FnTxCancel) bool       { return true }
func (t *recordTx) Respond(res *sip.Response) error {
	t.mu.Lock()
	t.codes = append(t.codes, res.StatusCode)
	t.mu.Unlock()
	return nil
}

func (t *recordTx) final() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.codes[len(t.codes)-1]
}

// memDirectory is a Directory in memory.
type memDirectory map[string]*dialplan.Extension

func (d memDirectory) Extension(_ context.Context, n string) (*dialplan.Extension, error) {
	return d[n], nil
}
func (d memDirectory) Queue(context.Context, string) (*dialplan.Queue, error) { return nil, nil }

var directory = memDirectory{
	"200": {Number: "200", Name: "Alice", Enabled: true, DND: true},
	"201": {Number: "201", Name: "Bob", Enabled: true, ForwardAlways: ""},
}

const benchScript = `
local blocked = { ["666"] = true }
function route(call)
  if blocked[call.from] then return call:reject(603) end
  local ext = pbx.extension(call.to)
  if not ext then return call:reject(404) end
  if not ext.enabled then return call:reject(410) end
  if ext.dnd then return call:reject(486, "Do Not Disturb") end
  return call:reject(480)
end
`

var blocked = map[string]bool{"666": true}

// goRoute makes the same decision as benchScript.
func goRoute(dir dialplan.Directory) dialplan.Handler {
	return dialplan.HandlerFunc(func(ctx context.Context, c *b2bua.Call) error {
		if blocked[c.Request().From().Address.User] {
			return c.Reject(603, "")
		}
		ext, err := dir.Extension(ctx, c.Callee())
		switch {
		case err != nil:
			return err
		case ext == nil:
			return c.Reject(404, "")
		case !ext.Enabled:
			return c.Reject(410, "")
		case ext.DND:
			return c.Reject(486, "Do Not Disturb")
		}
		return c.Reject(480, "")
	})
}

func newEngine(tb testing.TB) *b2bua.Engine {
	tb.Helper()
	ua, err := sipgo.NewUA()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ua.Close() })
	e, err := b2bua.New(ua, b2bua.Config{}, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

func newLua(tb testing.TB, script string, cfg dialplan.LuaConfig) *dialplan.Lua {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "dialplan.lua")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		tb.Fatal(err)
	}
	cfg.Script = path
	if cfg.Directory == nil {
		cfg.Directory = directory
	}
	l, err := dialplan.NewLua(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close(context.Background()) })
	return l
}

func invite(tb testing.TB, to string) *sip.Request {
	tb.Helper()
	m, err := sip.ParseMessage([]byte("INVITE sip:" + to + "@pbx.test SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\nMax-Forwards: 70\r\n" +
		"From: <sip:100@pbx.test>;tag=a\r\nTo: <sip:" + to + "@pbx.test>\r\nCall-ID: bench@test\r\n" +
		"CSeq: 1 INVITE\r\nContact: <sip:100@127.0.0.1:5070>\r\nContent-Length: 0\r\n\r\n"))
	if err != nil {
		tb.Fatal(err)
	}
	return m.(*sip.Request)
}

func benchmarkRoute(b *testing.B, h dialplan.Handler) {
	e := newEngine(b)
	req := invite(b, "200")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		tx := newRecordTx()
		e.Handle(req, tx, "", h.Handle)
		if tx.final() != 486 {
			b.Fatalf("got %d", tx.final())
		}
	}
}

func BenchmarkDialplan(b *testing.B) {
	b.Run("go", func(b *testing.B) { benchmarkRoute(b, goRoute(directory)) })
	b.Run("lua", func(b *testing.B) { benchmarkRoute(b, newLua(b, benchScript, dialplan.LuaConfig{})) })
}

func TestGoAndLuaAgree(t *testing.T) {
	e := newEngine(t)
	l := newLua(t, benchScript, dialplan.LuaConfig{})
	g := goRoute(directory)
	for _, to := range []string{"200", "201", "999"} {
		req := invite(t, to)
		tl, tg := newRecordTx(), newRecordTx()
		e.Handle(req, tl, "", l.Handle)
		e.Handle(req, tg, "", g.Handle)
		if tl.final() != tg.final() {
			t.Errorf("to %s: Lua answered %d, Go %d", to, tl.final(), tg.final())
		}
	}
}

// logTo is a logger that appends each message to lines.
func logTo(mu *sync.Mutex, lines *[]string) *slog.Logger {
	return slog.New(handlerFunc(func(r slog.Record) {
		mu.Lock()
		*lines = append(*lines, r.Message)
		mu.Unlock()
	}))
}

type handlerFunc func(slog.Record)

func (h handlerFunc) Enabled(context.Context, slog.Level) bool      { return true }
func (h handlerFunc) Handle(_ context.Context, r slog.Record) error { h(r); return nil }
func (h handlerFunc) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h handlerFunc) WithGroup(string) slog.Handler                 { return h }
