package dialplan

import (
	"context"
	"runtime/debug"
	"sync"

	lua "github.com/yuin/gopher-lua"

	"github.com/pbxkit/pbxkit/b2bua"
)

// on_dtmf(call, digit, side): key presses during a bridged call, for scripts that define it. The
// call core tells of them on the relay's or the SIP stack's goroutine, which must not wait; they
// queue here and one goroutine per call runs on_dtmf for each in turn, in a pooled Lua state as
// on_hangup runs. The goroutine starts with the call's first key press and ends with the call.

// keyQueue is how many key presses wait for on_dtmf at most; more are dropped (and logged).
const keyQueue = 32

// keyRunner runs on_dtmf for one call's key presses.
type keyRunner struct {
	l    *Lua
	s    *script
	c    *b2bua.Call
	once sync.Once
	keys chan [2]string // side, digit
}

func newKeyRunner(l *Lua, s *script, c *b2bua.Call) *keyRunner {
	return &keyRunner{l: l, s: s, c: c, keys: make(chan [2]string, keyQueue)}
}

// push queues a key press; it never blocks.
func (k *keyRunner) push(side, digit string) {
	k.once.Do(k.start)
	select {
	case k.keys <- [2]string{side, digit}:
	default:
		k.l.log.Warn("on_dtmf falls behind: key press dropped", "call_id", k.c.ID(), "digit", digit)
	}
}

// start starts the call's on_dtmf goroutine, unless the engine is closing.
func (k *keyRunner) start() {
	l := k.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.hangups.Add(1)
	go k.run()
}

func (k *keyRunner) run() {
	defer k.l.hangups.Done()
	for {
		select {
		case key := <-k.keys:
			k.call(key[0], key[1])
		case <-k.c.Done():
			return
		case <-k.l.quit:
			return
		}
	}
}

// call runs on_dtmf once.
func (k *keyRunner) call(side, digit string) {
	l, s := k.l, k.s
	defer func() {
		if p := recover(); p != nil {
			l.log.Error("panic in on_dtmf", "panic", p, "stack", string(debug.Stack()))
		}
	}()
	st := s.get()
	r := &run{l: l, s: s, st: st, c: k.c, log: l.log.With("call_id", k.c.ID(), "version", s.version)}
	r.start(context.Background())
	err := r.onDTMF(side, digit)
	r.stop()
	if err != nil || l.cur.Load() != s {
		st.Close()
		return
	}
	s.put(st)
}

// onDTMF runs on_dtmf(call, digit, side).
func (r *run) onDTMF(side, digit string) error {
	fn, ud, err := r.hook("on_dtmf")
	if err != nil {
		r.log.Error("on_dtmf not run", "error", err)
		return err
	}
	if fn == nil {
		return nil
	}
	err = r.check(r.st.CallByParam(lua.P{Fn: fn, NRet: 0, Protect: true}, ud, lua.LString(digit), lua.LString(side)))
	if err != nil {
		r.log.Error("on_dtmf failed", "error", err)
	}
	return err
}
