package dialplan

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/pbxkit/pbxkit/b2bua"
)

// The Lua API. docs/dialplan.md is its reference; keep the two in step.

var callMethods = map[string]lua.LGFunction{
	"connect":       luaConnect,
	"forward":       luaForward,
	"queue":         luaQueue,
	"reject":        luaReject,
	"redirect":      luaRedirect,
	"ringing":       luaRinging,
	"progress":      luaProgress,
	"header":        luaHeader,
	"set_header":    luaSetHeader,
	"set_caller_id": luaSetCallerID,
	"set":           luaSet,
	"get":           luaGet,
	"pickup":        luaPickup,
	"group_pickup":  luaGroupPickup,
	"unpark":        luaUnpark,
	"voicemail":     luaVoicemail,
	"answer":        luaAnswer,
	"hangup":        luaHangup,
	"play":          luaPlay,
	"gather":        luaGather,
	"record":        luaRecord,
	"record_call":   luaRecordCall,
	"conference":    luaConference,
}

// callIndex serves call.field and call:method.
func callIndex(L *lua.LState, methods *lua.LTable) int {
	r := checkCall(L)
	key := L.CheckString(2)
	if m := methods.RawGetString(key); m != lua.LNil {
		L.Push(m)
		return 1
	}
	c := r.c
	req := c.Request()
	switch key {
	case "id":
		L.Push(lua.LString(c.ID()))
	case "from":
		L.Push(lua.LString(req.From().Address.User))
	case "from_name":
		L.Push(lua.LString(req.From().DisplayName))
	case "to":
		L.Push(lua.LString(c.Callee()))
	case "uri":
		L.Push(lua.LString(req.Recipient.String()))
	case "source":
		L.Push(lua.LString(req.Source()))
	case "user":
		if u := c.User(); u != "" {
			L.Push(lua.LString(u))
		} else {
			L.Push(lua.LNil)
		}
	case "answered":
		L.Push(lua.LBool(c.Answered()))
	default:
		L.Push(lua.LNil)
	}
	return 1
}

func checkCall(L *lua.LState) *run {
	ud := L.CheckUserData(1)
	r, ok := ud.Value.(*run)
	if !ok || r.c == nil {
		L.ArgError(1, "a call expected (use call:method(...), not call.method(...))")
	}
	return r
}

// result pushes a verb's outcome as {answered=, status=, reason=}.
func result(L *lua.LState, res b2bua.Result) int {
	t := L.CreateTable(0, 3)
	t.RawSetString("answered", lua.LBool(res.Answered))
	t.RawSetString("status", lua.LNumber(res.Status))
	t.RawSetString("reason", lua.LString(res.Reason))
	L.Push(t)
	return 1
}

// failed pushes the result of an attempt that failed before it reached the call core (refused).
func failed(L *lua.LState, c *b2bua.Call, status int, reason string) int {
	return result(L, refused(c, status, reason))
}

// verbError raises a Lua error for a verb used wrongly; a verb on a call already decided (the
// caller hung up meanwhile, say) is not the script's fault and is not an error.
func verbError(L *lua.LState, err error) {
	if err != nil && !errors.Is(err, b2bua.ErrDecided) {
		L.RaiseError("%s", err.Error())
	}
}

// destinations reads argument n: one destination or a list of them.
func destinations(L *lua.LState, n int) []string {
	switch v := L.Get(n).(type) {
	case lua.LString:
		return []string{string(v)}
	case lua.LNumber:
		return []string{v.String()}
	case *lua.LTable:
		var out []string
		for i := 1; i <= v.Len(); i++ {
			s, ok := v.RawGetInt(i).(lua.LString)
			if !ok {
				L.ArgError(n, "a list of destinations must hold strings")
			}
			out = append(out, string(s))
		}
		if len(out) == 0 {
			L.ArgError(n, "the list of destinations is empty")
		}
		return out
	}
	L.ArgError(n, "a destination (extension number or sip: URI) or a list of them expected")
	return nil
}

// options reads argument n, an optional table.
func options(L *lua.LState, n int) *lua.LTable {
	switch v := L.Get(n).(type) {
	case *lua.LTable:
		return v
	case *lua.LNilType:
		return L.NewTable()
	}
	L.ArgError(n, "an options table expected")
	return nil
}

func optString(L *lua.LState, t *lua.LTable, key string) string {
	switch v := t.RawGetString(key).(type) {
	case lua.LString:
		return string(v)
	case *lua.LNilType:
		return ""
	}
	L.RaiseError("option %s must be a string", key)
	return ""
}

// optSeconds reads a duration in seconds (fractions allowed), 0 when absent.
func optSeconds(L *lua.LState, t *lua.LTable, key string) time.Duration {
	switch v := t.RawGetString(key).(type) {
	case lua.LNumber:
		f := float64(v)
		if math.IsNaN(f) || f <= 0 || f > maxWait.Seconds() {
			L.RaiseError("option %s must be a number of seconds above 0 and at most %d", key, int(maxWait.Seconds()))
		}
		return time.Duration(f * float64(time.Second))
	case *lua.LNilType:
		return 0
	}
	L.RaiseError("option %s must be a number of seconds", key)
	return 0
}

func connectOptions(L *lua.LState, r *run, t *lua.LTable) b2bua.ConnectOptions {
	o := b2bua.ConnectOptions{Timeout: optSeconds(L, t, "timeout"), CallerID: r.callerID, CallerName: r.callerName}
	if id := optString(L, t, "caller_id"); id != "" {
		o.CallerID = id
	}
	if name := optString(L, t, "caller_name"); name != "" {
		o.CallerName = name
	}
	o.Trunk = optString(L, t, "trunk")
	if err := checkCallerID(o.CallerID, o.CallerName); err != nil {
		L.RaiseError("%s", err.Error())
	}
	switch hs := t.RawGetString("headers").(type) {
	case *lua.LNilType:
	case *lua.LTable:
		var names []string
		values := map[string]string{}
		hs.ForEach(func(k, v lua.LValue) {
			ks, ok1 := k.(lua.LString)
			vs, ok2 := v.(lua.LString)
			if !ok1 || !ok2 {
				L.RaiseError("option headers must map header names to string values")
			}
			names = append(names, string(ks))
			values[string(ks)] = string(vs)
		})
		sort.Strings(names) // a table has no order; the INVITE should not change from call to call
		for _, n := range names {
			h, err := b2bua.NewHeader(n, values[n])
			if err != nil {
				L.RaiseError("%s", err.Error())
			}
			o.Headers = append(o.Headers, h)
		}
	default:
		L.RaiseError("option headers must be a table")
	}
	return o
}

// checkCallerID keeps a caller-ID a valid SIP user part and display name.
func checkCallerID(id, name string) error {
	if id != "" {
		if u, err := b2bua.ParseDestination(id); err != nil || u.Host != "" {
			return fmt.Errorf("caller_id %q is not a valid number (letters, digits, . - _ + * #)", id)
		}
	}
	if len(name) > 64 || strings.ContainsAny(name, "\"\\\r\n\x00") {
		return fmt.Errorf("caller_name %q is not usable (at most 64 characters, no quotes, backslashes or line breaks)", name)
	}
	return nil
}

// call:connect(target [, opts]) -> {answered, status, reason}; opts.strategy "hunt" rings the
// targets one after the other, each for opts.member_timeout.
func luaConnect(L *lua.LState) int {
	r := checkCall(L)
	dests := destinations(L, 2)
	t := options(L, 3)
	o := connectOptions(L, r, t)
	g := Group{Strategy: optString(L, t, "strategy"), Members: dests, MemberTimeout: optSeconds(L, t, "member_timeout")}
	if g.Strategy != "" && g.Strategy != GroupParallel && g.Strategy != GroupHunt {
		L.RaiseError("option strategy must be \"parallel\" or \"hunt\", not %q", g.Strategy)
	}
	var res b2bua.Result
	var err error
	r.wait(func() { res, err = RingGroup(r.ctx, r.c, g, o) })
	verbError(L, err)
	return result(L, res)
}

// call:forward(target [, opts]) -> {answered, status, reason}
func luaForward(L *lua.LState) int {
	r := checkCall(L)
	dests := destinations(L, 2)
	t := options(L, 3)
	o := b2bua.ForwardOptions{ConnectOptions: connectOptions(L, r, t), Reason: optString(L, t, "reason")}
	var res b2bua.Result
	var err error
	fwd := Default{Directory: r.l.cfg.Directory}
	r.wait(func() { res, err = fwd.Forward(r.ctx, r.c, dests, o) })
	verbError(L, err)
	return result(L, res)
}

// call:reject(code [, reason])
func luaReject(L *lua.LState) int {
	r := checkCall(L)
	code := L.CheckInt(2)
	phrase := L.OptString(3, "")
	verbError(L, r.c.Reject(code, phrase))
	return 0
}

// call:redirect(code, uri_or_list)
func luaRedirect(L *lua.LState) int {
	r := checkCall(L)
	code := L.CheckInt(2)
	var contacts []string
	if L.Get(3) != lua.LNil || code != 380 {
		contacts = destinations(L, 3)
	}
	verbError(L, r.c.Redirect(code, contacts))
	return 0
}

func luaRinging(L *lua.LState) int {
	verbError(L, checkCall(L).c.Ringing())
	return 0
}

// call:record_call() -> path, or nil and why: records both sides of the call into a stereo WAV
// file (caller left, callee right), from now on when bridged, else from the answer on. A call that
// cannot be recorded (no media relay, a codec the PBX does not decode, recorded already) goes on
// unrecorded.
func luaRecordCall(L *lua.LState) int {
	path, err := checkCall(L).c.RecordCall()
	if err != nil {
		L.Push(lua.LNil)
		L.Push(lua.LString(err.Error()))
		return 2
	}
	L.Push(lua.LString(path))
	return 1
}

func luaProgress(L *lua.LState) int {
	verbError(L, checkCall(L).c.Progress())
	return 0
}

// call:header(name) -> the first value of the caller's header, or nil
func luaHeader(L *lua.LState) int {
	r := checkCall(L)
	h := r.c.Request().GetHeader(L.CheckString(2))
	if h == nil {
		L.Push(lua.LNil)
	} else {
		L.Push(lua.LString(h.Value()))
	}
	return 1
}

// call:set_header(name, value): added to every B-leg INVITE from now on
func luaSetHeader(L *lua.LState) int {
	r := checkCall(L)
	if err := r.c.SetHeader(L.CheckString(2), L.CheckString(3)); err != nil {
		L.RaiseError("%s", err.Error())
	}
	return 0
}

// call:set_caller_id(number [, name]): what the callees of later connects see as the caller
func luaSetCallerID(L *lua.LState) int {
	r := checkCall(L)
	id, name := L.CheckString(2), L.OptString(3, "")
	if err := checkCallerID(id, name); err != nil {
		L.RaiseError("%s", err.Error())
	}
	r.callerID, r.callerName = id, name
	return 0
}

// call:set(name, value) and call:get(name): per-call variables, also seen by on_hangup
func luaSet(L *lua.LState) int {
	r := checkCall(L)
	name := L.CheckString(2)
	v := L.Get(3)
	switch v.(type) {
	case lua.LString, lua.LNumber, lua.LBool:
	default:
		L.ArgError(3, "a variable holds a string, number or boolean")
	}
	if len(name) > 64 || len(v.String()) > 1024 {
		L.RaiseError("call:set: names are at most 64 bytes and values at most 1024")
	}
	r.c.SetVar(name, v.String())
	return 0
}

func luaGet(L *lua.LState) int {
	r := checkCall(L)
	if v, ok := r.c.Var(L.CheckString(2)); ok {
		L.Push(lua.LString(v))
	} else {
		L.Push(lua.LNil)
	}
	return 1
}

func (r *run) lookup(L *lua.LState, number string) *Extension {
	if r.l.cfg.Directory == nil {
		L.RaiseError("the dialplan has no directory to look extensions up in")
	}
	var ext *Extension
	var err error
	r.wait(func() { ext, err = r.l.cfg.Directory.Extension(r.ctx, number) })
	if err != nil {
		L.RaiseError("looking up extension %s: %s", number, err.Error())
	}
	return ext
}

// pbx.extension(number) -> nil or {number, name, enabled, dnd, forward_always, forward_busy,
// forward_noanswer, ring_timeout, registered, pickup_group, voicemail, record}
func (r *run) luaExtension(L *lua.LState) int {
	ext := r.lookup(L, L.CheckString(1))
	if ext == nil {
		L.Push(lua.LNil)
		return 1
	}
	t := L.CreateTable(0, 11)
	t.RawSetString("number", lua.LString(ext.Number))
	t.RawSetString("name", lua.LString(ext.Name))
	t.RawSetString("enabled", lua.LBool(ext.Enabled))
	t.RawSetString("dnd", lua.LBool(ext.DND))
	t.RawSetString("forward_always", lua.LString(ext.ForwardAlways))
	t.RawSetString("forward_busy", lua.LString(ext.ForwardBusy))
	t.RawSetString("forward_noanswer", lua.LString(ext.ForwardNoAnswer))
	t.RawSetString("ring_timeout", lua.LNumber(ext.RingTimeout))
	t.RawSetString("registered", lua.LBool(ext.Registered))
	t.RawSetString("pickup_group", lua.LString(ext.PickupGroup))
	t.RawSetString("voicemail", lua.LBool(ext.Voicemail))
	t.RawSetString("record", lua.LBool(ext.Record))
	L.Push(t)
	return 1
}

// pbx.registered(number) -> true when the extension has a live registration
func (r *run) luaRegistered(L *lua.LState) int {
	ext := r.lookup(L, L.CheckString(1))
	L.Push(lua.LBool(ext != nil && ext.Registered))
	return 1
}

// pbx.log(level, msg, key, value, ...)
func (r *run) luaLog(L *lua.LState) int {
	var level slog.Level
	switch lv := L.CheckString(1); lv {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	case "warn", "warning":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		L.ArgError(1, fmt.Sprintf("level %q is not debug, info, warn or error", lv))
	}
	msg := L.CheckString(2)
	var attrs []any
	for i := 3; i <= L.GetTop(); i += 2 {
		key := L.ToStringMeta(L.Get(i)).String()
		if i+1 > L.GetTop() {
			attrs = append(attrs, slog.String("!BADKEY", key))
			break
		}
		attrs = append(attrs, slog.String(key, L.ToStringMeta(L.Get(i+1)).String()))
	}
	attrs = append(attrs, slog.String("source", "script"))
	r.log.Log(r.ctx, level, msg, attrs...)
	return 0
}

// pbx.time([zone]) -> {year, month, day, hour, min, sec, wday (1 = Sunday), yday, unix}
func (r *run) luaTime(L *lua.LState) int {
	loc := r.l.cfg.Location
	if z := L.OptString(1, ""); z != "" {
		var err error
		if loc, err = time.LoadLocation(z); err != nil {
			L.ArgError(1, fmt.Sprintf("unknown time zone %q", z))
		}
	}
	now := time.Now().In(loc)
	t := L.CreateTable(0, 11)
	t.RawSetString("year", lua.LNumber(now.Year()))
	t.RawSetString("month", lua.LNumber(now.Month()))
	t.RawSetString("day", lua.LNumber(now.Day()))
	t.RawSetString("hour", lua.LNumber(now.Hour()))
	t.RawSetString("min", lua.LNumber(now.Minute()))
	t.RawSetString("sec", lua.LNumber(now.Second()))
	t.RawSetString("wday", lua.LNumber(now.Weekday()+1))
	t.RawSetString("yday", lua.LNumber(now.YearDay()))
	t.RawSetString("unix", lua.LNumber(now.Unix()))
	L.Push(t)
	return 1
}
