package b2bua

import "fmt"

// callState is where a call is in its life. Every call moves along these arrows only:
//
//	setup ──► answered ◄──► transferring ──► parked ◄──► unparking
//	  │ │ ╲       ▲ │              │               │            │  │
//	  │ │  ╲      │ ▼              │               │            │  │
//	  │ │   ╲──► ended ◄───────────┴───────────────┴────────────╯  │
//	  │ ▼        ▲  ▲                    answered ◄─────────────────╯
//	  │ refused ─╯  │
//	  ▼             │
//	application ────╯  (and application ──► answered: Connect after Answer)
//
// setup: the caller waits for its final answer while routing decides and callees ring.
// refused: the caller's final error (or redirect) is being sent; the call ends next.
// answered: a callee answered and the caller got 200: the two dialogs are bridged.
// transferring: a REFER (blind or with Replaces) or an INVITE with Replaces is putting a new
// party in place of one side; a second transfer meanwhile is refused.
// parked: a blind transfer to the park number took one side away; the other waits in a park slot
// (park.go), hearing hold audio.
// unparking: a parked call is being retrieved, or rung back to its parker; it goes on answered,
// or back to parked when a retrieval fails.
// application: the PBX answered the caller itself (Answer) and is its other end: it plays,
// gathers key presses, records; no callee yet. A Connect then bridges a callee in (answered).
// ended: both sides are released and the record is written.
type callState int

const (
	stateSetup callState = iota
	stateRefused
	stateAnswered
	stateTransferring
	stateEnded
	stateParked
	stateUnparking
	stateApplication
)

var stateNames = [...]string{"setup", "refused", "answered", "transferring", "ended", "parked", "unparking", "application"}

func (s callState) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return fmt.Sprintf("callState(%d)", int(s))
	}
	return stateNames[s]
}

// next lists the states each state may move to.
var next = [...][]callState{
	stateSetup:        {stateRefused, stateAnswered, stateEnded, stateApplication},
	stateApplication:  {stateAnswered, stateEnded},
	stateRefused:      {stateEnded},
	stateAnswered:     {stateTransferring, stateEnded},
	stateTransferring: {stateAnswered, stateEnded, stateParked},
	stateEnded:        nil,
	stateParked:       {stateUnparking, stateEnded},
	stateUnparking:    {stateAnswered, stateParked, stateEnded},
}

// canMove reports whether a call in state s may move to to.
func (s callState) canMove(to callState) bool {
	for _, n := range next[s] {
		if n == to {
			return true
		}
	}
	return false
}

// decided reports whether the caller has its final answer (or will have it: refused) or the call
// is over: routing's verbs no longer apply.
func (s callState) decided() bool { return s != stateSetup }

// up reports whether the caller has its 200: bridged (answered, possibly in the middle of a
// transfer, or with one side parked) or answered by the PBX itself (application).
func (s callState) up() bool {
	return s == stateAnswered || s == stateTransferring || s == stateParked || s == stateUnparking ||
		s == stateApplication
}

// move changes the call's state if the state machine allows it, and reports whether it did.
// The caller holds c.mu.
func (c *Call) move(to callState) bool {
	if !c.state.canMove(to) {
		return false
	}
	c.log.Debug("call state", "from", c.state.String(), "to", to.String())
	c.state = to
	return true
}

// moveLocked is move taking c.mu.
func (c *Call) moveLocked(to callState) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.move(to)
}
