package media

import (
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// A conference Room mixes its participants' audio on the PBX: every 20 ms its clock takes one
// frame from each participant's jitter buffer, sums them, and sends each participant the sum
// minus its own frame (mix-minus: everyone hears everyone else, never themselves), saturated to
// 16 bits and encoded in the participant's G.711 law. One goroutine and one time.Ticker per room,
// none per participant; a frame allocates nothing (buffers live in the room and the
// participants). The room starts its goroutine with its first participant and closes (goroutine
// ended, Done closed) when the last one leaves; a closed room takes nobody (ErrRoomClosed): a
// registry makes a new one.

// DefaultMaxParticipants is how many participants a room takes when RoomConfig says nothing.
const DefaultMaxParticipants = 50

// maxBurst is how many frames the clock mixes at once to catch up after a late tick (a loaded
// machine); further behind, the frames are dropped and the jitter buffers skip them.
const maxBurst = 5

// Errors of Room.Join.
var (
	ErrRoomFull   = errors.New("media: the conference room is full")
	ErrRoomClosed = errors.New("media: the conference room is closed")
)

// RoomConfig configures a Room.
type RoomConfig struct {
	// Name names the room in logs.
	Name string
	// MaxParticipants is how many may be in the room at once; Join refuses more with ErrRoomFull.
	// Default DefaultMaxParticipants.
	MaxParticipants int
	// NoTones turns off the join and leave tones (a short rising beep when someone joins, a
	// falling one when someone leaves, heard by everyone in the room).
	NoTones bool
	// Logger receives the room's logs. Default: discarded.
	Logger *slog.Logger
	// OnChange, when set, is told of every change of the room (ConferenceEvent: joined, left,
	// muted, unmuted, ended) in the order they happened, once the room's lock is released, on
	// the goroutine that made the change (Join, Leave, SetMuted, Close) or on another one making
	// a change at the same time; never on the room's clock. It must not block; a change it makes
	// itself is told after it returns.
	OnChange func(ConferenceEvent)
}

// Room is a conference: participants join with Join and leave with Participant.Leave.
type Room struct {
	cfg RoomConfig
	log *slog.Logger

	mu      sync.Mutex
	members []*Participant
	nextID  int
	started bool    // the goroutine runs (or ran)
	closed  bool    // nobody joins any more
	noClock bool    // tests: no goroutine, frames mixed by calling mixFrame
	tone    []int16 // a tone to start with the next frame

	events *notifier // tells cfg.OnChange, or Conferences.OnChange

	tick    sync.Mutex // held by the clock for a whole frame: mixing and sending
	active  []*Participant
	sum     [frameSamples]int32
	playing []int16 // the rest of the tone being played
	plain   [2]plainFrame

	stop chan struct{}
	done chan struct{}
}

// plainFrame is the whole mix in one law, for every participant that added nothing to it (muted
// or silent): encoded once per frame, not once per listener.
type plainFrame struct {
	ok    bool
	frame [frameSamples]byte
}

// NewRoom returns an empty room; its clock starts with the first participant.
func NewRoom(cfg RoomConfig) (*Room, error) {
	if cfg.MaxParticipants < 0 {
		return nil, errors.New("media: negative MaxParticipants")
	}
	if cfg.MaxParticipants == 0 {
		cfg.MaxParticipants = DefaultMaxParticipants
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Room{
		cfg:     cfg,
		log:     cfg.Logger.With("room", cfg.Name),
		members: make([]*Participant, 0, cfg.MaxParticipants),
		active:  make([]*Participant, 0, cfg.MaxParticipants),
		events:  &notifier{f: cfg.OnChange},
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}, nil
}

// Name returns the room's name.
func (r *Room) Name() string { return r.cfg.Name }

// Done is closed when the room has closed: its last participant left, or Close.
func (r *Room) Done() <-chan struct{} { return r.done }

// Join adds a participant, who hears the room from the next frame on. ErrRoomFull when the room
// has MaxParticipants, ErrRoomClosed when it closed, ErrNoCodec for a codec other than G.711.
func (r *Room) Join(cfg ParticipantConfig) (*Participant, error) {
	defer r.events.flush()
	return r.join(cfg)
}

// join is Join without telling the change (Conferences tells it once its own lock is released).
func (r *Room) join(cfg ParticipantConfig) (*Participant, error) {
	out := g711Law(cfg.Codec.PayloadType)
	if (out == nil || cfg.Codec.Name == "") && (cfg.Send != nil || cfg.Codec.Name != "") {
		return nil, ErrNoCodec // pushed frames are G.711; a pulled participant may name no codec
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		return nil, ErrRoomClosed
	case len(r.members) >= r.cfg.MaxParticipants:
		return nil, ErrRoomFull
	}
	r.nextID++
	p := &Participant{room: r, id: r.nextID, name: cfg.Name, mod: cfg.Moderator, codec: cfg.Codec, out: out,
		send: cfg.Send, joined: time.Now(), left: make(chan struct{})}
	p.muted.Store(cfg.Muted)
	r.members = append(r.members, p)
	r.changed(ConferenceJoined, p, "")
	if cfg.Muted {
		r.changed(ConferenceMuted, p, "")
	}
	if !r.cfg.NoTones {
		r.tone = joinTone
	}
	if !r.started && !r.noClock {
		r.started = true
		go r.run()
	}
	r.log.Debug("conference: joined", "participant", p.id, "name", p.name, "codec", p.codec.Name,
		"participants", len(r.members))
	return p, nil
}

// changed queues a change of the room for cfg.OnChange. The caller holds r.mu.
func (r *Room) changed(kind string, p *Participant, why string) {
	ev := ConferenceEvent{Kind: kind, Room: r.cfg.Name, Why: why}
	if p != nil {
		ev.Participant = p.Info()
	}
	r.events.post(ev)
}

// remove takes p out of the room (why: LeftHangup, LeftKicked), and closes the room when p was
// the last. It reports whether p was in the room. The caller tells the change (r.events.flush).
func (r *Room) remove(p *Participant, why string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := slices.Index(r.members, p)
	if i < 0 {
		return false
	}
	r.members = slices.Delete(r.members, i, i+1)
	close(p.left)
	r.changed(ConferenceLeft, p, why)
	r.log.Debug("conference: left", "participant", p.id, "name", p.name, "participants", len(r.members))
	if p.mod && len(r.members) > 0 && !slices.ContainsFunc(r.members, (*Participant).moderator) {
		r.log.Info("conference: the last moderator left: the conference ends", "participants", len(r.members))
		r.empty()
	}
	if len(r.members) == 0 {
		r.shut()
	} else if !r.cfg.NoTones {
		r.tone = leaveTone
	}
	return true
}

// empty takes everyone out of the room: the conference ended. The caller holds r.mu.
func (r *Room) empty() {
	for _, q := range r.members {
		close(q.left)
		r.changed(ConferenceLeft, q, LeftEnded)
	}
	clear(r.members)
	r.members = r.members[:0]
}

// shut closes the room: nobody joins any more, and the clock stops. The caller holds r.mu.
func (r *Room) shut() {
	if r.closed {
		return
	}
	r.closed = true
	if r.nextID > 0 { // a room nobody ever joined never was a conference
		r.changed(ConferenceEnded, nil, "")
	}
	close(r.stop)
	if !r.started {
		close(r.done)
	}
}

// settle waits until the room's clock no longer uses a participant that was removed: until the
// frame in progress is over, or the clock stopped.
func (r *Room) settle() {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		<-r.done
		return
	}
	r.tick.Lock()
	//lint:ignore SA2001 an empty critical section: waiting for the frame in progress
	r.tick.Unlock()
}

// Close removes every participant (their Done channels close) and stops the room's clock; it
// waits for the clock's goroutine. It is safe to call more than once.
func (r *Room) Close() {
	r.mu.Lock()
	r.empty()
	r.shut()
	r.mu.Unlock()
	r.events.flush()
	<-r.done
}

// Participant returns the participant with id, or nil when none in the room has it.
func (r *Room) Participant(id int) *Participant {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.members {
		if p.id == id {
			return p
		}
	}
	return nil
}

// Participants describes who is in the room, in the order they joined.
func (r *Room) Participants() []ParticipantInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]ParticipantInfo, 0, len(r.members))
	for _, p := range r.members {
		out = append(out, p.Info())
	}
	return out
}

// Len returns how many participants are in the room.
func (r *Room) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.members)
}
