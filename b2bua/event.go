package b2bua

import "time"

// EventKind names what happened to a call.
type EventKind string

// Call events, in the order a call can see them.
const (
	CallNew         EventKind = "call.new"         // an INVITE was taken: the B-legs are being sent
	CallRinging     EventKind = "call.ringing"     // a callee answered 180 or 183
	CallAnswered    EventKind = "call.answered"    // a callee answered 2xx
	CallTransferred EventKind = "call.transferred" // a side was replaced by a transfer target (REFER)
	CallEnded       EventKind = "call.ended"       // the call is over: Status, HangupBy and Reason say how
	CallDTMF        EventKind = "call.dtmf"        // a side pressed a key (RFC 4733 through the media relay, or SIP INFO): Digit, Side, Source
	CallParked      EventKind = "call.parked"      // a side was parked (blind transfer to the park number): Slot
	CallRetrieved   EventKind = "call.retrieved"   // a parked call was retrieved from its Slot, or rung back to its parker
	// Per B-leg toward an extension, for busy lamps of every phone rung (a ring group, a queue,
	// forking): the extension (Leg) is being rung; it stopped being rung without answering
	// (declined, cancelled because another answered or the caller gave up, timed out). The leg
	// that answers gets no CallLegEnded: CallAnswered names it.
	CallLegRinging EventKind = "call.leg_ringing"
	CallLegEnded   EventKind = "call.leg_ended"
	// The call's recording started, or stopped (by request or with the call): Path names the
	// file (recording.go).
	CallRecordingStarted EventKind = "call.recording_started"
	CallRecordingStopped EventKind = "call.recording_stopped"
)

// Event is something that happened to a call.
type Event struct {
	Kind     EventKind
	Time     time.Time
	CallID   string // the caller's Call-ID
	Caller   string
	Callee   string
	Status   int    // CallRinging: 180 or 183; CallEnded: the final status (200 when answered)
	HangupBy string // CallEnded: "caller", "callee" or "pbx"
	Reason   string // CallEnded: why, in words
	Digit    string // CallDTMF: 0-9, *, #, A-D
	Side     string // CallDTMF: "caller" or "callee" (who pressed); CallParked: the side that parked the other and left
	Source   string // CallDTMF: "rfc4733" or "info"
	Slot     string // CallParked, CallRetrieved: the park slot
	Leg      string // CallLegRinging, CallLegEnded: the extension of the leg
	Pickable bool   // CallLegRinging: the leg rings for a call being set up, which a pickup can answer
	Path     string // CallRecordingStarted, CallRecordingStopped: the recording's file
}

// emit publishes an event of kind with the call's identity.
func (c *Call) emit(kind EventKind, status int) { c.emitWith(Event{Kind: kind, Status: status}) }

// emitWith publishes ev with the call's identity filled in (and, for CallEnded, how it ended).
func (c *Call) emitWith(ev Event) {
	if c.e.cfg.OnEvent == nil {
		return
	}
	c.mu.Lock()
	ev.Time, ev.CallID, ev.Caller, ev.Callee = time.Now(), c.rec.CallID, c.rec.Caller, c.rec.Callee
	if ev.Kind == CallEnded {
		ev.Status, ev.HangupBy, ev.Reason = c.rec.Status, c.rec.HangupBy, c.rec.Reason
	}
	c.mu.Unlock()
	c.e.cfg.OnEvent(ev)
}
