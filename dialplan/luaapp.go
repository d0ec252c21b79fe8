package dialplan

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	lua "github.com/yuin/gopher-lua"

	"github.com/pbxkit/pbxkit/b2bua"
)

// The Lua API of applications: the PBX answers the call itself (docs/dialplan.md, "Applications").
//
// A PBX without media relay cannot answer with media of its own: call:answer() then returns
// {answered=false, status=501} and logs why, so a script can fall back (connect to a person,
// reject) rather than fail the call with 500. Play, gather and record before a successful answer
// are the script's mistake and raise an error. A verb on a call whose caller hung up meanwhile
// returns at once (nothing played, "" gathered, the recording so far written); the next one
// stops the script.

// call:answer() -> {answered, status, reason}
func luaAnswer(L *lua.LState) int {
	r := checkCall(L)
	var err error
	r.wait(func() { err = r.c.Answer(r.ctx) })
	switch {
	case err == nil:
		return result(L, b2bua.Result{Answered: true, Status: 200, Reason: "answered by the pbx"})
	case errors.Is(err, b2bua.ErrNoRelay):
		r.log.Warn("call:answer() needs the media relay (RTP ports): the call was not answered", "error", err)
		return result(L, b2bua.Result{Status: 501, Reason: "the pbx has no media relay to answer with"})
	case errors.Is(err, b2bua.ErrDecided):
		return result(L, b2bua.Result{Answered: r.c.Answered(), Status: 487, Reason: "the call is already decided"})
	}
	var se *b2bua.StatusError
	if errors.As(err, &se) {
		// The caller's offer cannot be answered (488: no G.711): the caller still waits.
		r.log.Info("call:answer() refused the caller's offer", "status", se.Code, "error", err)
		return result(L, b2bua.Result{Status: se.Code, Reason: se.Reason})
	}
	r.log.Warn("call:answer() failed", "error", err)
	return result(L, b2bua.Result{Status: 500, Reason: err.Error()})
}

// call:hangup(): BYE to an answered caller; before the answer a final 603 Decline, as Asterisk's
// Hangup() answers an unanswered SIP call.
func luaHangup(L *lua.LState) int {
	r := checkCall(L)
	switch {
	case r.c.Answered():
		r.c.Hangup("hung up by the dialplan")
	case !r.c.Decided():
		verbError(L, r.c.Reject(603, ""))
	}
	return 0
}

// appError raises a Lua error for an application verb used before call:answer(). A call that
// ended is no error the first time (the verb returns at once, so the script may store what it
// recorded); the next application verb stops the script (run.gone: Handle ends the route without
// an error), so a menu loop cannot spin on a call that is over, its run-time clock stopped.
func appError(L *lua.LState, verb string, err error) {
	switch {
	case err == nil:
	case errors.Is(err, b2bua.ErrDecided):
		r := checkCall(L)
		if r.gone {
			r.stopped = true
			L.RaiseError("call:%s: the call has ended: the script stops", verb)
		}
		r.gone = true
	case errors.Is(err, b2bua.ErrNotAnswered), errors.Is(err, b2bua.ErrNoRelay):
		L.RaiseError("call:%s: %s", verb, err.Error())
	}
}

// call:play(what [, {loop=n, interrupt=bool}]) -> interrupted (true when a key stopped it), or
// false and an error message when a sound cannot be played (logged)
func luaPlay(L *lua.LState) int {
	r := checkCall(L)
	sounds := r.sounds(L, 2)
	t := options(L, 3)
	o := b2bua.PlayOptions{Loop: optInt(L, t, "loop", 0, 1000), Interrupt: optBool(L, t, "interrupt")}
	var keyed bool
	var err error
	r.wait(func() { keyed, err = r.c.Play(r.ctx, sounds, o) })
	appError(L, "play", err)
	if err != nil && !errors.Is(err, b2bua.ErrDecided) {
		r.log.Warn("call:play failed", "error", err)
		L.Push(lua.LFalse)
		L.Push(lua.LString(err.Error()))
		return 2
	}
	L.Push(lua.LBool(keyed))
	return 1
}

// call:gather({max=n, timeout=s, terminator="#", prompt=FILE}) -> the keys pressed, "" on timeout
func luaGather(L *lua.LState) int {
	r := checkCall(L)
	t := options(L, 2)
	o := b2bua.GatherOptions{Max: optInt(L, t, "max", 0, 64), Timeout: optSeconds(L, t, "timeout"),
		Terminator: optString(L, t, "terminator")}
	if o.Terminator == "" && t.RawGetString("terminator") != lua.LNil {
		o.Terminator = b2bua.NoTerminator
	}
	if o.Terminator != b2bua.NoTerminator && o.Terminator != "" {
		if len(o.Terminator) != 1 || !strings.Contains("0123456789*#ABCD", strings.ToUpper(o.Terminator)) {
			L.RaiseError("option terminator must be one key (0-9, *, #, A-D) or \"\" for none")
		}
		o.Terminator = strings.ToUpper(o.Terminator)
	}
	if p := optString(L, t, "prompt"); p != "" {
		o.Prompt = r.soundPath(p)
	}
	var keys string
	var err error
	r.wait(func() { keys, err = r.c.Gather(r.ctx, o) })
	appError(L, "gather", err)
	if err != nil && !errors.Is(err, b2bua.ErrDecided) {
		r.log.Warn("call:gather failed", "error", err)
	}
	L.Push(lua.LString(keys))
	return 1
}

// call:record(path, {max=s, silence=s, beep=bool}) -> {path=, seconds=}, or nil and an error
// message. path is relative to the data directory (LuaConfig.DataDir), and the file is written
// through an os.Root of it: no "..", symbolic link or absolute path leads out, and an existing
// file is not replaced.
func luaRecord(L *lua.LState) int {
	r := checkCall(L)
	fail := func(err error) int {
		r.log.Warn("call:record failed", "error", err)
		L.Push(lua.LNil)
		L.Push(lua.LString(err.Error()))
		return 2
	}
	dir, name, err := r.l.dataPath(L.CheckString(2))
	if err != nil {
		return fail(err)
	}
	t := options(L, 3)
	o := b2bua.RecordOptions{Max: optSeconds(L, t, "max"), Silence: optSeconds(L, t, "silence"), Beep: optBool(L, t, "beep")}
	root, err := openData(dir, name)
	if err != nil {
		return fail(err)
	}
	defer root.Close()
	o.Root = root
	var rec b2bua.Recording
	r.wait(func() { rec, err = r.c.RecordCaller(r.ctx, name, o) })
	appError(L, "record", err)
	if err != nil {
		return fail(err)
	}
	res := L.CreateTable(0, 2)
	res.RawSetString("path", lua.LString(filepath.Join(dir, rec.Path)))
	res.RawSetString("seconds", lua.LNumber(rec.Seconds))
	L.Push(res)
	return 1
}

// sounds reads argument n: one sound or a list of them, with relative paths resolved.
func (r *run) sounds(L *lua.LState, n int) []string {
	var out []string
	switch v := L.Get(n).(type) {
	case lua.LString:
		out = []string{r.soundPath(string(v))}
	case *lua.LTable:
		for i := 1; i <= v.Len(); i++ {
			s, ok := v.RawGetInt(i).(lua.LString)
			if !ok {
				L.ArgError(n, "a list of sounds must hold strings")
			}
			out = append(out, r.soundPath(string(s)))
		}
	}
	if len(out) == 0 {
		L.ArgError(n, "a sound (a WAV file, tone:ringback, tone:busy, tone:beep) or a list of them expected")
	}
	return out
}

// soundPath resolves a sound's name: tones and absolute paths (call:record's results) as they
// are, other paths relative to the script's folder, where a dialplan keeps its prompts.
func (r *run) soundPath(name string) string {
	if strings.HasPrefix(name, "tone:") || filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(filepath.Dir(r.l.cfg.Script), filepath.Clean(name))
}

// dataPath checks a path a script records to: relative to the data directory (or absolute
// inside it), no ".." component, ending in .wav. It returns the data directory (absolute) and the
// path's name inside it.
func (l *Lua) dataPath(name string) (dir, local string, err error) {
	if l.cfg.DataDir == "" {
		return "", "", errors.New("call:record: the dialplan has no data directory to record into")
	}
	dir, err = filepath.Abs(l.cfg.DataDir)
	if err != nil {
		return "", "", fmt.Errorf("call:record: %w", err)
	}
	outside := fmt.Errorf("call:record: %q is outside the data directory", name)
	for _, part := range strings.FieldsFunc(name, func(r rune) bool { return r == '/' || r == filepath.Separator }) {
		if part == ".." {
			return "", "", outside
		}
	}
	local = name
	if filepath.IsAbs(name) {
		if local, err = filepath.Rel(dir, filepath.Clean(name)); err != nil {
			return "", "", outside
		}
	}
	local = filepath.Clean(local)
	if !filepath.IsLocal(local) || local == "." {
		return "", "", outside
	}
	if !strings.EqualFold(filepath.Ext(local), ".wav") {
		return "", "", fmt.Errorf("call:record: %q must end in .wav", name)
	}
	return dir, local, nil
}

// openData opens the data directory dir as an os.Root, made if needed, with the folders of the
// file name inside it made through the root: a symbolic link leading out of dir is refused.
func openData(dir, name string) (*os.Root, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("call:record: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("call:record: %w", err)
	}
	if err := root.MkdirAll(filepath.Dir(name), 0o750); err != nil {
		root.Close()
		return nil, fmt.Errorf("call:record: %w", err)
	}
	return root, nil
}

func optBool(L *lua.LState, t *lua.LTable, key string) bool {
	switch v := t.RawGetString(key).(type) {
	case lua.LBool:
		return bool(v)
	case *lua.LNilType:
		return false
	}
	L.RaiseError("option %s must be true or false", key)
	return false
}

// optInt reads a whole number between lo and hi, def when absent.
func optInt(L *lua.LState, t *lua.LTable, key string, def, hi int) int {
	switch v := t.RawGetString(key).(type) {
	case lua.LNumber:
		n := int(v)
		if float64(n) != float64(v) || n < 0 || n > hi {
			L.RaiseError("option %s must be a whole number from 0 to %d", key, hi)
		}
		return n
	case *lua.LNilType:
		return def
	}
	L.RaiseError("option %s must be a number", key)
	return def
}
