package dialplan

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"

	"github.com/pbxkit/pbxkit/b2bua"
)

// LuaConfig configures the Lua dialplan engine.
type LuaConfig struct {
	// Script is the path of the dialplan: a Lua file defining route(call) and optionally
	// on_hangup(call, cdr). Other .lua files in its folder can be loaded with require.
	Script string
	// Directory is where pbx.extension and pbx.registered look extensions up and call:queue
	// finds queues. Without it they raise an error.
	Directory Directory
	// Queues holds the callers waiting in queues. Default: a Queues of the engine's own.
	Queues *Queues
	// MaxRunTime bounds how long a script runs for one call (and for one on_hangup), not
	// counting the time spent waiting in connect, forward or queue. A script that runs longer is
	// stopped and the caller gets 500. Default 1 s.
	MaxRunTime time.Duration
	// DataDir is where call:record writes: the paths scripts give are relative to it, and a path
	// outside it is refused. Empty: call:record refuses to record.
	DataDir string
	// Watch reloads the script when a .lua file in its folder changes.
	Watch bool
	// Location is the time zone of pbx.time. Default time.Local.
	Location *time.Location
	// Logger receives the engine's logs and the scripts' pbx.log lines. Default: discarded.
	Logger *slog.Logger
	// OnReload, when set, is told the outcome of every reload after the first load (nil error:
	// the new version runs). It is called on the reloading goroutine.
	OnReload func(version int, err error)
}

// Lua is a dialplan written in Lua: a Handler that runs the script's route(call) for each call.
type Lua struct {
	cfg     LuaConfig
	log     *slog.Logger
	cur     atomic.Pointer[script]
	reload  sync.Mutex // one reload at a time
	version int

	mu      sync.Mutex
	closed  bool
	hangups sync.WaitGroup // on_hangup runs and on_dtmf runners (luadtmf.go) in progress

	watcher *fsnotify.Watcher
	quit    chan struct{}
	watchWG sync.WaitGroup
}

var _ Handler = (*Lua)(nil)

// statePool is how many idle Lua states a version keeps. A state is held by its call while the
// script runs, ringing included, so a busy PBX has as many in use as calls are being routed; one
// made afresh costs about 175 µs and 120 KB, which at 64 pooled states was a tenth of the CPU of
// a call-rate run. 256 idle states are about 30 MB at most.
const statePool = 256

// script is one compiled version of the dialplan. Its Lua states are pooled; a state is used by
// one call at a time, and each call runs in fresh globals, so nothing a script stores survives
// its call.
type script struct {
	version int
	name    string // the main file's name, for error messages
	main    *lua.FunctionProto
	modules map[string]*lua.FunctionProto // by require name ("lib.hours" for lib/hours.lua)
	broken  map[string]error              // modules that do not compile: require raises the error
	hangup  bool                          // the script defines on_hangup
	dtmf    bool                          // the script defines on_dtmf
	pool    chan *state
	stats   poolStats // for trim
}

// maxModuleDepth bounds how deep below the script's folder require looks.
const maxModuleDepth = 3

// NewLua compiles the script and returns the engine; a script that does not compile, fails while
// loading or defines no route function is an error.
func NewLua(cfg LuaConfig) (*Lua, error) {
	if cfg.Script == "" {
		return nil, errors.New("dialplan: no script given")
	}
	if cfg.MaxRunTime <= 0 {
		cfg.MaxRunTime = time.Second
	}
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Queues == nil {
		cfg.Queues = NewQueues(cfg.Directory)
	}
	l := &Lua{cfg: cfg, log: cfg.Logger.With("component", "dialplan"), quit: make(chan struct{})}
	s, err := l.compile()
	if err != nil {
		return nil, err
	}
	l.cur.Store(s)
	l.log.Info("dialplan loaded", "script", cfg.Script, "version", s.version, "modules", len(s.modules))
	if cfg.Watch {
		if err := l.watch(); err != nil {
			return nil, err
		}
	}
	l.watchWG.Add(1)
	go l.trimLoop()
	return l, nil
}

// Script returns the path of the script.
func (l *Lua) Script() string { return l.cfg.Script }

// Version returns the version of the script running now: 1 after NewLua, one more after each
// successful reload.
func (l *Lua) Version() int { return l.cur.Load().version }

// Reload compiles the script again and, if it compiles, loads and defines route, makes it the
// running version; calls in progress finish with the version they started with. A broken script
// leaves the running one in place and the error is returned (and logged).
func (l *Lua) Reload() error {
	l.reload.Lock()
	defer l.reload.Unlock()
	s, err := l.compile()
	if err != nil {
		l.log.Error("dialplan reload failed: the running version stays", "script", l.cfg.Script, "version", l.Version(), "error", err)
		if l.cfg.OnReload != nil {
			l.cfg.OnReload(l.Version(), err)
		}
		return err
	}
	old := l.cur.Swap(s)
	old.drain()
	l.log.Info("dialplan reloaded", "script", l.cfg.Script, "version", s.version)
	if l.cfg.OnReload != nil {
		l.cfg.OnReload(s.version, nil)
	}
	return nil
}

// compile reads, parses and compiles the script and every module in its folder, then loads the
// script once in a fresh sandbox to see that it defines route.
func (l *Lua) compile() (*script, error) {
	main, err := compileFile(l.cfg.Script, filepath.Base(l.cfg.Script))
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(l.cfg.Script)
	modules := map[string]*lua.FunctionProto{}
	broken := map[string]error{}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			if path != dir && (strings.Count(rel, string(filepath.Separator))+1 >= maxModuleDepth || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(d.Name(), ".lua") || path == filepath.Clean(l.cfg.Script) {
			return nil
		}
		name := strings.ReplaceAll(strings.TrimSuffix(rel, ".lua"), string(filepath.Separator), ".")
		if !validModuleName(name) {
			return nil // not reachable by require anyway
		}
		// A module that does not compile fails the scripts that require it, not the dialplan:
		// the folder may hold other scripts (an old copy, one being written).
		p, err := compileFile(path, rel)
		if err != nil {
			broken[name] = err
			l.log.Warn("dialplan: a .lua file beside the script does not compile; require of it will fail", "file", rel, "error", err)
			return nil
		}
		modules[name] = p
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dialplan: %w", err)
	}
	l.version++
	s := &script{version: l.version, name: filepath.Base(l.cfg.Script), main: main, modules: modules, broken: broken}
	s.initPool()

	// Load it once, as each call will, to find route and on_hangup.
	st := newState()
	defer st.Close()
	r := &run{l: l, s: s, st: st, log: l.log}
	r.start(context.Background())
	defer r.stop()
	if err := r.load(); err != nil {
		l.version--
		return nil, err
	}
	if _, ok := r.env.RawGetString("route").(*lua.LFunction); !ok {
		l.version--
		return nil, fmt.Errorf("dialplan: %s defines no function route(call)", s.name)
	}
	_, s.hangup = r.env.RawGetString("on_hangup").(*lua.LFunction)
	_, s.dtmf = r.env.RawGetString("on_dtmf").(*lua.LFunction)
	return s, nil
}

func compileFile(path, chunk string) (*lua.FunctionProto, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dialplan: %w", err)
	}
	stmts, err := parse.Parse(strings.NewReader(string(src)), chunk)
	if err != nil {
		return nil, fmt.Errorf("dialplan: %w", err)
	}
	proto, err := lua.Compile(stmts, chunk)
	if err != nil {
		return nil, fmt.Errorf("dialplan: %w", err)
	}
	return proto, nil
}

// get takes a state from the version's pool, or makes one.
func (s *script) get() *state {
	select {
	case st := <-s.pool:
		s.stats.noteIdle(len(s.pool))
		return st
	default:
		s.stats.noteIdle(0)
		return newState()
	}
}

// put returns a state that finished cleanly to the pool (or closes it when the pool is full).
func (s *script) put(st *state) {
	st.SetTop(0)
	st.cur = nil
	select {
	case s.pool <- st:
	default:
		st.Close()
	}
}

// drain closes the pooled states of a version that was replaced; states still in use are closed
// when their call is done with them, since a replaced version's pool may be full again.
func (s *script) drain() {
	for {
		select {
		case st := <-s.pool:
			st.Close()
		default:
			return
		}
	}
}

// Handle runs the script's route(call) for c. An error in the script, or a script that runs
// longer than MaxRunTime, is returned (the caller gets 500) and logged with the script's line.
func (l *Lua) Handle(ctx context.Context, c *b2bua.Call) error {
	s := l.cur.Load()
	if s.dtmf {
		c.OnDTMF(newKeyRunner(l, s, c).push)
	}
	st := s.get()
	r := &run{l: l, s: s, st: st, c: c, log: l.log.With("call_id", c.ID(), "version", s.version)}
	r.start(ctx)
	err := r.route()
	r.stop()
	if err != nil || l.cur.Load() != s {
		st.Close() // after an error the state may be left anywhere; a replaced version's states go
	} else {
		s.put(st)
	}
	if s.hangup {
		c.OnEnd(func(rec b2bua.Record) { l.hangup(s, c, rec) })
	}
	if err != nil && r.stopped {
		r.log.Debug("script stopped: the call has ended", "error", err)
		return nil
	}
	return err
}

// hangup runs on_hangup(call, cdr) for a call that ended, in the background.
func (l *Lua) hangup(s *script, c *b2bua.Call, rec b2bua.Record) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.hangups.Add(1)
	l.mu.Unlock()
	go func() {
		defer l.hangups.Done()
		defer func() {
			if p := recover(); p != nil {
				l.log.Error("panic in on_hangup", "panic", p, "stack", string(debug.Stack()))
			}
		}()
		st := s.get()
		r := &run{l: l, s: s, st: st, c: c, log: l.log.With("call_id", c.ID(), "version", s.version)}
		r.start(context.Background())
		err := r.onHangup(rec)
		r.stop()
		if err != nil || l.cur.Load() != s {
			st.Close()
			return
		}
		s.put(st)
	}()
}

// Close stops watching the script and waits for the on_hangup runs in progress, at most until
// ctx ends. It is safe to call more than once.
func (l *Lua) Close(ctx context.Context) error {
	l.mu.Lock()
	already := l.closed
	l.closed = true
	l.mu.Unlock()
	if !already {
		close(l.quit)
		if l.watcher != nil {
			l.watcher.Close()
		}
	}
	done := make(chan struct{})
	go func() {
		l.watchWG.Wait()
		l.hangups.Wait()
		close(done)
	}()
	select {
	case <-done:
		l.cur.Load().drain()
		return nil
	case <-ctx.Done():
		return fmt.Errorf("dialplan: close: %w", ctx.Err())
	}
}

// watch reloads the script when a .lua file of its folder is written, created, renamed or
// removed (editors often save by renaming a new file over the old one). Bursts of events are
// taken together.
func (l *Lua) watch() error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("dialplan: watching %s: %w", l.cfg.Script, err)
	}
	dir := filepath.Dir(l.cfg.Script)
	if err := w.Add(dir); err != nil {
		w.Close()
		return fmt.Errorf("dialplan: watching %s: %w", dir, err)
	}
	l.watcher = w
	l.watchWG.Add(1)
	go func() {
		defer l.watchWG.Done()
		const settle = 100 * time.Millisecond
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		defer timer.Stop()
		for {
			select {
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if strings.HasSuffix(ev.Name, ".lua") && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename|fsnotify.Remove) != 0 {
					timer.Reset(settle)
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				l.log.Warn("watching the dialplan", "error", err)
			case <-timer.C:
				_ = l.Reload() // logged by Reload
			case <-l.quit:
				return
			}
		}
	}()
	return nil
}

// validModuleName reports whether name can be required: dot-separated identifiers.
func validModuleName(name string) bool {
	if name == "" || len(name) > 128 {
		return false
	}
	for _, part := range strings.Split(name, ".") {
		if part == "" {
			return false
		}
		for i := 0; i < len(part); i++ {
			b := part[i]
			if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '_' || b == '-') {
				return false
			}
		}
	}
	return true
}
