package pbx

import (
	"cmp"
	"errors"
	"log/slog"
	"slices"
	"sync"

	"github.com/pbxkit/pbxkit/media"
)

// Conferences is the PBX's conference rooms, by name (issue 14 point 4). A room is made when its
// first participant joins and forgotten once it closed (its last participant left); the audio is
// mixed by media.Room. The dialplan's call:conference joins callers; the admin API lists rooms,
// mutes and kicks participants through it; Go code may join media of its own.
type Conferences struct {
	log *slog.Logger

	mu     sync.Mutex
	rooms  map[string]*media.Room
	closed bool
}

// Errors of the conference registry.
var (
	ErrNoConference  = errors.New("pbx: no such conference room")
	ErrNoParticipant = errors.New("pbx: no such participant in the room")
	ErrShutdown      = errors.New("pbx: shutting down")
)

// ConferenceInfo describes a room and who is in it.
type ConferenceInfo struct {
	Name         string                  `json:"name"`
	Participants []media.ParticipantInfo `json:"participants"`
}

func newConferences(log *slog.Logger) *Conferences {
	return &Conferences{log: log, rooms: make(map[string]*media.Room)}
}

// Conferences returns the PBX's conference rooms.
func (p *PBX) Conferences() *Conferences { return p.conferences }

// Join puts a participant into the room named room, making the room when it has none (or the one
// it had closed). Errors: media.ErrRoomFull, media.ErrNoCodec (a codec other than G.711),
// ErrShutdown.
func (c *Conferences) Join(room string, cfg media.ParticipantConfig) (*media.Participant, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrShutdown
	}
	c.sweep()
	for {
		r, made := c.rooms[room], false
		if r == nil {
			var err error
			if r, err = media.NewRoom(media.RoomConfig{Name: room, Logger: c.log}); err != nil {
				return nil, err
			}
			made = true
		}
		p, err := r.Join(cfg)
		switch {
		case errors.Is(err, media.ErrRoomClosed) && !made: // its last participant just left
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

// Participant returns participant id of room: ErrNoConference, ErrNoParticipant when there is none.
func (c *Conferences) Participant(room string, id int) (*media.Participant, error) {
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
	p.Leave()
	c.log.Info("conference: participant kicked", "room", room, "participant", id)
	return nil
}

// close closes every room (their participants' Done channels close) and takes no more. Safe to
// call more than once.
func (c *Conferences) close() {
	c.mu.Lock()
	c.closed = true
	rooms := c.rooms
	c.rooms = map[string]*media.Room{}
	c.mu.Unlock()
	for _, r := range rooms {
		r.Close()
	}
}
