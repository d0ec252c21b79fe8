package b2bua

import (
	"slices"
	"strings"
	"time"
)

// CallInfo is a snapshot of a call in progress, for admin views (the PBX's HTTP API).
type CallInfo struct {
	ID      string    // the caller's Call-ID
	Caller  string    // the caller's user part
	Dialled string    // what the caller dialled
	Callee  string    // who the caller talks to, or the last one rung
	State   string    // "setup", "ringing", "answered", "transferring", "parked", "unparking", ...
	Start   time.Time // when the INVITE arrived
	Answer  time.Time // zero until answered
	// Recording is the file the call is being recorded into, "" when it is not.
	Recording string
}

// Calls returns a snapshot of the calls in progress, oldest first.
func (e *Engine) Calls() []CallInfo {
	calls := e.liveCalls()
	out := make([]CallInfo, 0, len(calls))
	for _, c := range calls {
		out = append(out, c.info())
	}
	slices.SortFunc(out, func(a, b CallInfo) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Call returns the call in progress whose caller's Call-ID is id, or nil.
func (e *Engine) Call(id string) *Call {
	for _, c := range e.liveCalls() {
		if c.id == id {
			return c
		}
	}
	return nil
}

// info is the call's snapshot.
func (c *Call) info() CallInfo {
	_, ringing := c.ringingLeg(func(*leg) bool { return true })
	c.mu.Lock()
	defer c.mu.Unlock()
	state := c.state.String()
	if ringing {
		state = "ringing"
	}
	rec := c.recording.path
	if c.recording.waiting {
		rec = ""
	}
	return CallInfo{ID: c.id, Caller: c.rec.Caller, Dialled: c.rec.Dialled, Callee: c.rec.Callee,
		State: state, Start: c.rec.Start, Answer: c.rec.Answer, Recording: rec}
}
