package media

import (
	"sync"
	"time"
)

// Room events: who joins and leaves a room, mutes and unmutes, and its end, told to an observer
// (RoomConfig.OnChange, Conferences.OnChange; the PBX's event stream) in the order they happened.

// Kinds of ConferenceEvent.
const (
	ConferenceJoined  = "conference.joined"  // a participant joined the room
	ConferenceLeft    = "conference.left"    // a participant left the room: Why
	ConferenceMuted   = "conference.muted"   // a participant was muted (or joined muted: right after its ConferenceJoined)
	ConferenceUnmuted = "conference.unmuted" // a participant was unmuted
	ConferenceEnded   = "conference.ended"   // the room closed: its last participant or last moderator left, or Close
)

// Why a participant left (ConferenceEvent.Why).
const (
	LeftHangup = "hangup" // it left by itself (Participant.Leave): a caller hung up
	LeftKicked = "kicked" // it was taken out (Conferences.Kick: the admin API)
	LeftEnded  = "ended"  // the conference ended: the last moderator left, or the room was closed
)

// ConferenceEvent tells that a room changed.
type ConferenceEvent struct {
	Kind string // ConferenceJoined, ConferenceLeft, ConferenceMuted, ConferenceUnmuted or ConferenceEnded
	Time time.Time
	Room string // the room's name (RoomConfig.Name)
	// Participant is who joined, left, was muted or unmuted, as it was right after the change
	// (Muted is the new state); zero for ConferenceEnded.
	Participant ParticipantInfo
	Why         string // ConferenceLeft: LeftHangup, LeftKicked or LeftEnded
}

// notifier tells rooms' changes to their observer in the order they happened, outside the
// rooms' locks and on no goroutine of its own: a change is queued (post) while its room's lock is
// held, and told (flush) once it is released, by whichever goroutine finds nobody else telling; a
// goroutine that finds another one telling leaves its changes to it. A Room has one of its own;
// Conferences shares one among its rooms, so that a room's end is told before a room of the same
// name that follows it begins. The rooms' clocks never change a room, so the observer never runs
// on one.
type notifier struct {
	mu      sync.Mutex
	f       func(ConferenceEvent) // nil: changes are not kept
	queue   []ConferenceEvent
	telling bool
}

// set sets the observer.
func (n *notifier) set(f func(ConferenceEvent)) {
	n.mu.Lock()
	n.f = f
	n.mu.Unlock()
}

// post queues a change. The caller holds the room's lock, so the queue's order is the room's.
func (n *notifier) post(ev ConferenceEvent) {
	n.mu.Lock()
	if n.f != nil {
		ev.Time = time.Now()
		n.queue = append(n.queue, ev)
	}
	n.mu.Unlock()
}

// flush tells the queued changes unless another goroutine is telling them. The caller holds none
// of the rooms' locks.
func (n *notifier) flush() {
	n.mu.Lock()
	if n.telling {
		n.mu.Unlock()
		return
	}
	n.telling = true
	for len(n.queue) > 0 {
		evs, f := n.queue, n.f
		n.queue = nil
		n.mu.Unlock()
		for _, ev := range evs {
			if f != nil {
				f(ev)
			}
		}
		n.mu.Lock()
	}
	n.telling = false
	n.mu.Unlock()
}
