package pbx

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/dialplan"
	"github.com/pbxkit/pbxkit/media"
)

// Event kinds besides the call events of package b2bua (call.new, call.ringing, call.answered,
// call.transferred, call.dtmf, call.parked, call.retrieved, call.ended).
const (
	RegistrationAdded     = "registration.added"     // a contact was bound to an extension
	RegistrationRefreshed = "registration.refreshed" // an existing binding was renewed
	RegistrationRemoved   = "registration.removed"   // a binding was removed by its phone
	// Queues (queueevents.go).
	QueueJoined   = dialplan.QueueJoined   // a caller started waiting: Queue, CallID, Position, Waiting
	QueueLeft     = dialplan.QueueLeft     // a caller stopped waiting: Queue, CallID, Status, Waiting
	AgentPaused   = "queue.agent_paused"   // an agent was paused: Queue ("" all its queues), Extension, Reason
	AgentUnpaused = "queue.agent_unpaused" // an agent was unpaused: Queue, Extension
	// Conference rooms (conferences.go).
	ConferenceJoined  = media.ConferenceJoined  // a participant joined: Room, Participant, Caller, Codec, Moderator
	ConferenceLeft    = media.ConferenceLeft    // a participant left: Room, Participant, Caller, Reason (hangup, kicked, ended)
	ConferenceMuted   = media.ConferenceMuted   // a participant was muted (or joined muted): Room, Participant, Caller
	ConferenceUnmuted = media.ConferenceUnmuted // a participant was unmuted: Room, Participant, Caller
	ConferenceEnded   = media.ConferenceEnded   // a room closed (its last participant or moderator left, shutdown): Room
)

// Event is something that happened in the PBX, for framework users who watch it (Subscribe).
type Event struct {
	Kind string
	Time time.Time

	// Calls.
	CallID   string
	Caller   string // the caller; conference.*: the participant's name (a caller's number)
	Callee   string
	Status   int
	HangupBy string
	Reason   string // why: call.ended; AgentPaused's reason; conference.left: hangup, kicked, ended (the conference ended)
	Digit    string // call.dtmf: the key pressed (0-9, *, #, A-D)
	Side     string // call.dtmf: "caller" or "callee"
	Slot     string // call.parked, call.retrieved: the park slot
	Leg      string // call.leg_ringing, call.leg_ended: the extension a B-leg rings
	Path     string // call.recording_started, call.recording_stopped: the recording's file

	// Registrations.
	Extension string
	Contact   string
	Source    string
	Expires   time.Duration

	// Queues.
	Queue    string
	Waiting  int // callers waiting in Queue after the change
	Position int // QueueJoined: the caller's place in line

	// Conference rooms.
	Room        string // the room's name
	Participant int    // the participant's ID in Room (1, 2, ... in the order they joined)
	Codec       string // the codec the participant hears the room in (PCMU, PCMA)
	Moderator   bool   // the participant's leaving ends the conference when no other moderator is in
}

// Subscription receives the PBX's events on C until Close or Shutdown, which close C. Events are
// never waited for: when C's buffer is full an event is dropped and counted (Dropped), so a slow
// subscriber cannot delay calls.
type Subscription struct {
	C       <-chan Event
	c       chan Event
	h       *hub
	dropped atomic.Int64
}

// Dropped returns how many events did not fit into C.
func (s *Subscription) Dropped() int64 { return s.dropped.Load() }

// Close stops the subscription and closes C. It is safe to call more than once.
func (s *Subscription) Close() { s.h.remove(s) }

// Subscribe returns a subscription with room for buffer events (at least 1).
func (p *PBX) Subscribe(buffer int) *Subscription {
	c := make(chan Event, max(buffer, 1))
	s := &Subscription{C: c, c: c, h: p.events}
	p.events.mu.Lock()
	if p.events.closed {
		close(c)
	} else {
		p.events.subs[s] = struct{}{}
	}
	p.events.mu.Unlock()
	return s
}

type hub struct {
	mu     sync.Mutex
	closed bool
	subs   map[*Subscription]struct{}
}

func newHub() *hub { return &hub{subs: map[*Subscription]struct{}{}} }

func (h *hub) publish(ev Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.c <- ev:
		default:
			s.dropped.Add(1)
		}
	}
}

func (h *hub) remove(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		close(s.c)
	}
}

// close ends every subscription; later ones start closed.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		delete(h.subs, s)
		close(s.c)
	}
}

func callEvent(e b2bua.Event) Event {
	return Event{Kind: string(e.Kind), Time: e.Time, CallID: e.CallID, Caller: e.Caller, Callee: e.Callee,
		Status: e.Status, HangupBy: e.HangupBy, Reason: e.Reason, Digit: e.Digit, Side: e.Side, Slot: e.Slot, Leg: e.Leg, Path: e.Path}
}
