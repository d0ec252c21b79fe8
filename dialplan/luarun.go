package dialplan

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/pbxkit/pbxkit/b2bua"
)

// Sandbox limits of every Lua state.
const (
	callStackSize   = 200     // nested Lua calls
	registrySize    = 1024    // initial data stack
	registryMaxSize = 1 << 18 // data stack slots at most
	maxRep          = 1 << 20 // bytes string.rep may build
	maxWait         = time.Hour
)

// safeBase lists the base library functions a script may use. Left out: dofile, loadfile, load,
// loadstring (code from outside the compiled script), require and module (replaced by a require
// that only reads the script's folder), getfenv and setfenv (reach other functions'
// environments), rawset (would bypass read-only tables), collectgarbage, newproxy, print
// (replaced by one that logs), and _G (each call gets its own).
var safeBase = []string{"assert", "error", "ipairs", "next", "pairs", "pcall", "xpcall", "select",
	"tonumber", "tostring", "type", "unpack", "rawget", "rawequal", "getmetatable", "setmetatable", "_VERSION"}

// safeLibs are the libraries a script may use, read-only.
var safeLibs = []string{lua.StringLibName, lua.TabLibName, lua.MathLibName}

const callType = "pbxkit.call"

// state is a pooled Lua state with its sandbox. The sandbox is built once per state: a table of
// everything a script may use (base functions, read-only library tables, the pbx module) behind
// the metatable of each call's globals. A call's globals are a fresh empty table; what a script
// defines lands there and is gone with the call, and what it finds there falls through to the
// sandbox, which it cannot change.
type state struct {
	*lua.LState
	envMeta *lua.LTable // metatable of each call's globals: __index is the sandbox
	cur     *run        // the run using the state
}

// newState makes a sandboxed Lua state: only the base, table, string and math libraries, with
// string.rep bounded and the string metatable hidden (getmetatable("") would otherwise hand out
// the shared string library itself).
func newState() *state {
	L := lua.NewState(lua.Options{SkipOpenLibs: true, CallStackSize: callStackSize,
		RegistrySize: registrySize, RegistryMaxSize: registryMaxSize})
	st := &state{LState: L}
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString}, {lua.MathLibName, lua.OpenMath}} {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	str := L.GetGlobal(lua.StringLibName).(*lua.LTable)
	str.RawSetString("rep", L.NewFunction(strRep))
	str.RawSetString("dump", lua.LNil)
	// gopher-lua makes the string library its own __index, so ("").__index would be the shared
	// library table itself: strings get a metatable of their own instead.
	str.RawSetString("__index", lua.LNil)
	L.SetMetatable(lua.LString(""), lockedMeta(L, str))

	g := L.G.Global
	sandbox := L.NewTable()
	for _, name := range safeBase {
		sandbox.RawSetString(name, g.RawGetString(name))
	}
	sandbox.RawSetString("getmetatable", L.NewFunction(getMetatable))
	for _, name := range safeLibs {
		sandbox.RawSetString(name, readOnly(L, name, g.RawGetString(name).(*lua.LTable)))
	}
	sandbox.RawSetString("print", L.NewFunction(func(L *lua.LState) int { return st.cur.print(L) }))
	sandbox.RawSetString("require", L.NewFunction(func(L *lua.LState) int { return st.cur.require(L) }))
	pbx := L.NewTable()
	for name, f := range map[string]func(*run, *lua.LState) int{
		"extension": (*run).luaExtension, "registered": (*run).luaRegistered, "queue_size": (*run).luaQueueSize,
		"log": (*run).luaLog, "time": (*run).luaTime,
		"queue_pause": (*run).luaQueuePause, "queue_login": (*run).luaQueueLogin, "queue_stats": (*run).luaQueueStats,
		"group": (*run).luaGroup,
	} {
		pbx.RawSetString(name, L.NewFunction(func(L *lua.LState) int { return f(st.cur, L) }))
	}
	sandbox.RawSetString("pbx", readOnly(L, "pbx", pbx))
	st.envMeta = lockedMeta(L, sandbox)

	mt := L.NewTypeMetatable(callType)
	methods := L.SetFuncs(L.NewTable(), callMethods)
	mt.RawSetString("__index", L.NewFunction(func(L *lua.LState) int { return callIndex(L, methods) }))
	mt.RawSetString("__newindex", L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("the call object is read-only: use call:set(name, value) for variables")
		return 0
	}))
	mt.RawSetString("__metatable", lua.LString("locked"))
	return st
}

// readOnly is an empty table that reads through to t and refuses writes.
func readOnly(L *lua.LState, name string, t *lua.LTable) *lua.LTable {
	mt := lockedMeta(L, t)
	mt.RawSetString("__newindex", L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("the %s library is read-only", name)
		return 0
	}))
	proxy := L.NewTable()
	proxy.Metatable = mt
	return proxy
}

// lockedMeta is a metatable whose __index is t and which getmetatable does not hand out.
func lockedMeta(L *lua.LState, t *lua.LTable) *lua.LTable {
	mt := L.NewTable()
	mt.RawSetString("__index", t)
	mt.RawSetString("__metatable", lua.LString("locked"))
	return mt
}

// getMetatable honours __metatable (Lua 5.1 §5.1), which gopher-lua's own does not.
func getMetatable(L *lua.LState) int {
	mt := L.GetMetatable(L.CheckAny(1))
	if t, ok := mt.(*lua.LTable); ok {
		if protected := t.RawGetString("__metatable"); protected != lua.LNil {
			L.Push(protected)
			return 1
		}
	}
	L.Push(mt)
	return 1
}

func strRep(L *lua.LState) int {
	s := L.CheckString(1)
	n := L.CheckInt(2)
	if n <= 0 || s == "" {
		L.Push(lua.LString(""))
		return 1
	}
	if len(s) > maxRep/n {
		L.RaiseError("string.rep: result longer than %d bytes", maxRep)
	}
	L.Push(lua.LString(strings.Repeat(s, n)))
	return 1
}

// run is one use of a Lua state: route for one call, or on_hangup. It keeps the script's run-time
// budget: the clock runs while Lua code runs and stops while a verb waits for the network.
type run struct {
	l   *Lua
	s   *script
	st  *state
	c   *b2bua.Call // nil while compile loads the script
	log *slog.Logger

	ctx     context.Context // the call's: verbs wait under it
	cancel  context.CancelFunc
	timer   *time.Timer
	left    time.Duration
	since   time.Time
	expired atomic.Bool

	gone    bool // an application verb found the call ended (appError)
	stopped bool // a later one stopped the script for it: no error

	env        *lua.LTable
	loaded     map[string]lua.LValue
	callerID   string
	callerName string
}

func (r *run) start(parent context.Context) {
	r.st.cur = r
	r.ctx = parent
	lctx, cancel := context.WithCancel(parent)
	r.cancel = cancel
	r.left = r.l.cfg.MaxRunTime
	r.st.SetContext(lctx)
	r.resume()
}

func (r *run) stop() {
	r.pause()
	r.cancel()
	r.st.RemoveContext()
}

func (r *run) pause() {
	if r.timer != nil && r.timer.Stop() {
		r.left -= time.Since(r.since)
	}
	r.timer = nil
}

func (r *run) resume() {
	if r.left <= 0 {
		r.expire()
		return
	}
	r.since = time.Now()
	r.timer = time.AfterFunc(r.left, r.expire)
}

func (r *run) expire() {
	r.expired.Store(true)
	r.cancel()
}

// wait runs f, a verb that waits for the network, with the run-time clock stopped.
func (r *run) wait(f func()) {
	r.pause()
	defer r.resume()
	f()
}

// load makes the call's globals and runs the script's main chunk in them.
func (r *run) load() error {
	L := r.st.LState
	env := L.NewTable()
	env.Metatable = r.st.envMeta
	env.RawSetString("_G", env)
	r.env = env
	fn := L.NewFunctionFromProto(r.s.main)
	fn.Env = env
	L.Push(fn)
	return r.check(L.PCall(0, 0, nil))
}

// hook loads the script and returns its function name with the call as the userdata a hook
// gets first; fn is nil when the script does not define name.
func (r *run) hook(name string) (fn *lua.LFunction, call *lua.LUserData, err error) {
	if err := r.load(); err != nil {
		return nil, nil, err
	}
	fn, _ = r.env.RawGetString(name).(*lua.LFunction)
	call = r.st.NewUserData()
	call.Value = r
	call.Metatable = r.st.GetTypeMetatable(callType)
	return fn, call, nil
}

// route runs route(call).
func (r *run) route() error {
	fn, ud, err := r.hook("route")
	if err != nil {
		return err
	}
	if fn == nil {
		return fmt.Errorf("dialplan: %s defines no function route(call)", r.s.name)
	}
	return r.check(r.st.CallByParam(lua.P{Fn: fn, NRet: 0, Protect: true}, ud))
}

// onHangup runs on_hangup(call, cdr) for a call that ended.
func (r *run) onHangup(rec b2bua.Record) error {
	fn, ud, err := r.hook("on_hangup")
	if err != nil {
		r.log.Error("on_hangup not run", "error", err)
		return err
	}
	if fn == nil {
		return nil
	}
	L := r.st.LState
	cdr := L.NewTable()
	cdr.RawSetString("call_id", lua.LString(rec.CallID))
	cdr.RawSetString("caller", lua.LString(rec.Caller))
	cdr.RawSetString("dialled", lua.LString(rec.Dialled))
	cdr.RawSetString("callee", lua.LString(rec.Callee))
	cdr.RawSetString("status", lua.LNumber(rec.Status))
	cdr.RawSetString("disposition", lua.LString(rec.Disposition()))
	cdr.RawSetString("hangup_by", lua.LString(rec.HangupBy))
	cdr.RawSetString("reason", lua.LString(rec.Reason))
	cdr.RawSetString("start", lua.LNumber(rec.Start.Unix()))
	cdr.RawSetString("end", lua.LNumber(rec.End.Unix()))
	cdr.RawSetString("duration", lua.LNumber(rec.End.Sub(rec.Start).Seconds()))
	billsec := 0.0
	if !rec.Answer.IsZero() {
		cdr.RawSetString("answer", lua.LNumber(rec.Answer.Unix()))
		billsec = rec.End.Sub(rec.Answer).Seconds()
	}
	cdr.RawSetString("billsec", lua.LNumber(billsec))
	cdr.RawSetString("segments", segmentsTable(L, rec.Segments))
	recs := L.CreateTable(len(rec.Recordings), 0)
	for _, p := range rec.Recordings {
		recs.Append(lua.LString(p))
	}
	cdr.RawSetString("recordings", recs)
	err = r.check(L.CallByParam(lua.P{Fn: fn, NRet: 0, Protect: true}, ud, cdr))
	if err != nil {
		r.log.Error("on_hangup failed", "error", err)
	}
	return err
}

// check turns a Lua error into the engine's error: a script that ran out of time says so, and
// every error names the script line (gopher-lua puts "file:line:" in front of the message).
func (r *run) check(err error) error {
	if err == nil {
		return nil
	}
	var ae *lua.ApiError
	msg := err.Error()
	if errors.As(err, &ae) {
		msg = ae.Object.String()
		r.log.Debug("script error", "error", msg, "stack", ae.StackTrace)
	}
	if r.expired.Load() {
		return fmt.Errorf("dialplan: script ran longer than %v: stopped at %s", r.l.cfg.MaxRunTime, strings.TrimSuffix(msg, " context canceled"))
	}
	return fmt.Errorf("dialplan: %s", msg)
}

func (r *run) print(L *lua.LState) int {
	parts := make([]string, L.GetTop())
	for i := range parts {
		parts[i] = L.ToStringMeta(L.Get(i + 1)).String()
	}
	r.log.Info(strings.Join(parts, "\t"), "source", "print")
	return 0
}

// require loads a module of the script's folder: require("lib.hours") runs lib/hours.lua, once
// per call, in the call's globals. Only files compiled with the script can be loaded.
func (r *run) require(L *lua.LState) int {
	name := L.CheckString(1)
	if !validModuleName(name) {
		L.ArgError(1, fmt.Sprintf("%q is not a module name (letters, digits, '_', '-', separated by dots)", name))
	}
	if v, ok := r.loaded[name]; ok {
		L.Push(v)
		return 1
	}
	if err, ok := r.s.broken[name]; ok {
		L.RaiseError("module %q does not compile: %v", name, err)
	}
	proto, ok := r.s.modules[name]
	if !ok {
		L.RaiseError("module %q not found in the dialplan's folder", name)
	}
	if r.loaded == nil {
		r.loaded = map[string]lua.LValue{}
	}
	r.loaded[name] = lua.LTrue // a module that requires itself gets true, not a loop
	fn := L.NewFunctionFromProto(proto)
	fn.Env = r.env
	L.Push(fn)
	L.Push(lua.LString(name))
	L.Call(1, 1)
	v := L.Get(-1)
	L.Pop(1)
	if v == lua.LNil {
		v = lua.LTrue
	}
	r.loaded[name] = v
	L.Push(v)
	return 1
}

// segmentsTable is a record's segments as a Lua list of {caller, callee, start, end, reason}.
func segmentsTable(L *lua.LState, segs []b2bua.Segment) *lua.LTable {
	t := L.CreateTable(len(segs), 0)
	for _, s := range segs {
		st := L.CreateTable(0, 5)
		st.RawSetString("caller", lua.LString(s.Caller))
		st.RawSetString("callee", lua.LString(s.Callee))
		st.RawSetString("start", lua.LNumber(s.Start.Unix()))
		st.RawSetString("end", lua.LNumber(s.End.Unix()))
		st.RawSetString("reason", lua.LString(s.EndReason))
		t.Append(st)
	}
	return t
}
