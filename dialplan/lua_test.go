package dialplan_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/dialplan"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestChainStopsAtTheFirstDecision(t *testing.T) {
	e := newEngine(t)
	var ran []string
	h := func(name string, code int) dialplan.Handler {
		return dialplan.HandlerFunc(func(ctx context.Context, c *b2bua.Call) error {
			ran = append(ran, name)
			if code != 0 {
				return c.Reject(code, "")
			}
			return nil
		})
	}
	tx := newRecordTx()
	e.Handle(invite(t, "200"), tx, "", dialplan.Chain(h("pass", 0), h("reject", 404), h("never", 500)).Handle)
	if tx.final() != 404 || strings.Join(ran, ",") != "pass,reject" {
		t.Fatalf("answered %d after %v", tx.final(), ran)
	}
}

func TestUndecidedCallGets500(t *testing.T) {
	e := newEngine(t)
	tx := newRecordTx()
	e.Handle(invite(t, "200"), tx, "", func(context.Context, *b2bua.Call) error { return nil })
	if tx.final() != 500 {
		t.Fatalf("got %d, want 500", tx.final())
	}
	tx = newRecordTx()
	e.Handle(invite(t, "200"), tx, "", func(context.Context, *b2bua.Call) error { panic("bug in a handler") })
	if tx.final() != 500 {
		t.Fatalf("after a panic: got %d, want 500", tx.final())
	}
}

func TestReloadWhileCallsRun(t *testing.T) {
	// Calls keep running while the script is replaced over and over: every call gets the answer
	// of one whole version, never a mix, and nothing races (run with -race).
	e := newEngine(t)
	l := newLua(t, `function route(call) call:reject(486) end`, dialplan.LuaConfig{})
	path := l.Script()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				tx := newRecordTx()
				e.Handle(invite(t, "200"), tx, "", l.Handle)
				if c := tx.final(); c != 486 && c != 603 {
					t.Errorf("answer %d from no version", c)
					return
				}
			}
		}()
	}
	for i := range 20 {
		code := []string{"486", "603"}[i%2]
		if err := os.WriteFile(path, []byte("function route(call) call:reject("+code+") end"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := l.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if v := l.Version(); v != 21 {
		t.Fatalf("version %d after 20 reloads, want 21", v)
	}
}

func TestOnHangupSeesTheRecord(t *testing.T) {
	e := newEngine(t)
	var mu sync.Mutex
	var lines []string
	l := newLua(t, `
function route(call) call:set("k", "v") call:reject(404) end
function on_hangup(call, cdr)
  print(call:get("k"), cdr.status, cdr.disposition, cdr.billsec)
end`, dialplan.LuaConfig{Logger: logTo(&mu, &lines)})
	tx := newRecordTx()
	e.Handle(invite(t, "200"), tx, "", l.Handle)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.Close(ctx); err != nil { // waits for on_hangup
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(strings.Join(lines, "\n"), "v\t404\tfailed\t0") {
		t.Fatalf("on_hangup printed %q", lines)
	}
}

func TestRunTimeExcludesWaiting(t *testing.T) {
	// The run-time budget counts Lua code, not the time a verb waits: a directory look-up that
	// takes 300 ms does not use up a 100 ms budget.
	e := newEngine(t)
	slow := slowDirectory{delay: 300 * time.Millisecond}
	l := newLua(t, `function route(call)
  local ext = pbx.extension("200")
  call:reject(ext and 486 or 404)
end`, dialplan.LuaConfig{Directory: slow, MaxRunTime: 100 * time.Millisecond})
	tx := newRecordTx()
	e.Handle(invite(t, "200"), tx, "", l.Handle)
	if tx.final() != 486 {
		t.Fatalf("got %d, want 486", tx.final())
	}
}

type slowDirectory struct{ delay time.Duration }

func (d slowDirectory) Extension(ctx context.Context, n string) (*dialplan.Extension, error) {
	time.Sleep(d.delay)
	return &dialplan.Extension{Number: n, Enabled: true}, nil
}
func (d slowDirectory) Queue(context.Context, string) (*dialplan.Queue, error) { return nil, nil }

func TestNewLuaRefusesBrokenScripts(t *testing.T) {
	for name, script := range map[string]string{
		"syntax":     "function route(call",
		"no route":   "function rout(call) end",
		"load error": "error('at load')\nfunction route(call) end",
		"slow load":  "while true do end",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "dialplan.lua")
			os.WriteFile(path, []byte(script), 0o644)
			if _, err := dialplan.NewLua(dialplan.LuaConfig{Script: path, MaxRunTime: 50 * time.Millisecond}); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestNewLuaSkipsBrokenSiblings: a .lua file beside the script that does not compile (an old
// copy, one half written) does not stop the dialplan; a script that requires it fails to load,
// with the module's error.
func TestNewLuaSkipsBrokenSiblings(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "old.lua"), []byte("function route(call"), 0o644)
	path := filepath.Join(dir, "dialplan.lua")
	os.WriteFile(path, []byte("function route(call) end"), 0o644)
	l, err := dialplan.NewLua(dialplan.LuaConfig{Script: path})
	if err != nil {
		t.Fatalf("a broken unrelated .lua stopped the dialplan: %v", err)
	}
	l.Close(context.Background())
	os.WriteFile(path, []byte("local old = require('old')\nfunction route(call) end"), 0o644)
	_, err = dialplan.NewLua(dialplan.LuaConfig{Script: path})
	if err == nil || !strings.Contains(err.Error(), `module "old" does not compile`) || !strings.Contains(err.Error(), "old.lua") {
		t.Fatalf("requiring the broken module: %v", err)
	}
}
