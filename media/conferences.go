package media

import (
	"cmp"
	"errors"
	"log/slog"
	"slices"
	"sync"
)

// Conferences is a PBX's conference rooms, by name (issue 14 point 4). A room is made when its
// first participant joins and forgotten once it closed (its last participant left). The
// dialplan's call:conference joins callers; the admin API lists rooms, mutes and kicks
// participants through it; Go code may join media of its own.
type Conferences struct {
	log *slog.Logger

	events *notifier // shared by the rooms: OnChange

	mu     sync.Mutex
	rooms  map[string]*Room
	closed bool
}

// Errors of Conferences.
var (
	ErrNoConference  = errors.New("media: no such conference room")
	ErrNoParticipant = errors.New("media: no such participant in the room")
	ErrClosed        = errors.New("media: the conference rooms are closed")
)

// ConferenceInfo describes a room and who is in it.
type ConferenceInfo struct {
	Name         string            `json:"name"`
	Participants []ParticipantInfo `json:"participants"`
}

// NewConferences returns an empty set of rooms that log to log (nil: discarded).
func NewConferences(log *slog.Logger) *Conferences {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Conferences{log: log, events: &notifier{}, rooms: make(map[string]*Room)}
}

// OnChange sets a function told of every change of the rooms (as RoomConfig.OnChange: who joins
// and leaves, mutes and unmutes, a room's end), in the order they happened across all rooms,
// outside the registry's and the rooms' locks. It must not block. Nil tells nobody.
func (c *Conferences) OnChange(f func(ConferenceEvent)) { c.events.set(f) }

// Join puts a participant into the room named room, making the room when it has none (or the one
// it had closed). Errors: ErrRoomFull, ErrNoCodec (a codec other than G.711), ErrClosed.
func (c *Conferences) Join(room string, cfg ParticipantConfig) (*Participant, error) {
	p, err := c.join(room, cfg)
	c.events.flush() // outside c.mu
	return p, err
}

func (c *Conferences) join(room string, cfg ParticipantConfig) (*Participant, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	c.sweep()
	for {
		r, made := c.rooms[room], false
		if r == nil {
			var err error
			if r, err = NewRoom(RoomConfig{Name: room, Logger: c.log}); err != nil {
				return nil, err
			}
			r.events = c.events
			made = true
		}
		p, err := r.join(cfg)
		switch {
		case errors.Is(err, ErrRoomClosed) && !made: // its last participant just left
			delete(c.rooms, room)
			continue
		case err != nil:
			if made {
				r.Close()
			}
			return nil, err
		}
		c.rooms[room] = r
		return p, nil
	}
}

// sweep forgets the rooms that closed. The caller holds c.mu.
func (c *Conferences) sweep() {
	for name, r := range c.rooms {
		select {
		case <-r.Done():
			delete(c.rooms, name)
		default:
		}
	}
}

// List describes the open rooms, by name.
func (c *Conferences) List() []ConferenceInfo {
	c.mu.Lock()
	c.sweep()
	out := make([]ConferenceInfo, 0, len(c.rooms))
	for name, r := range c.rooms {
		out = append(out, ConferenceInfo{Name: name, Participants: r.Participants()})
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b ConferenceInfo) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Counts returns how many rooms are open and how many participants are in them.
func (c *Conferences) Counts() (rooms, participants int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweep()
	for _, r := range c.rooms {
		participants += r.Len()
	}
	return len(c.rooms), participants
}

// Participant returns participant id of room: ErrNoConference, ErrNoParticipant when there is none.
func (c *Conferences) Participant(room string, id int) (*Participant, error) {
	c.mu.Lock()
	c.sweep()
	r := c.rooms[room]
	c.mu.Unlock()
	if r == nil {
		return nil, ErrNoConference
	}
	p := r.Participant(id)
	if p == nil {
		return nil, ErrNoParticipant
	}
	return p, nil
}

// SetMuted mutes (or unmutes) participant id of room.
func (c *Conferences) SetMuted(room string, id int, muted bool) error {
	p, err := c.Participant(room, id)
	if err != nil {
		return err
	}
	p.SetMuted(muted)
	c.log.Info("conference: participant muted", "room", room, "participant", id, "muted", muted)
	return nil
}

// Kick takes participant id out of room; a caller in the room is hung up.
func (c *Conferences) Kick(room string, id int) error {
	p, err := c.Participant(room, id)
	if err != nil {
		return err
	}
	p.leave(LeftKicked)
	c.log.Info("conference: participant kicked", "room", room, "participant", id)
	return nil
}

// Close closes every room (their participants' Done channels close) and takes no more. It is
// safe to call more than once.
func (c *Conferences) Close() {
	c.mu.Lock()
	c.closed = true
	rooms := c.rooms
	c.rooms = map[string]*Room{}
	c.mu.Unlock()
	for _, r := range rooms {
		r.Close()
	}
}
