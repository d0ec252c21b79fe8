package media

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

// ParticipantConfig describes a participant joining a Room.
type ParticipantConfig struct {
	// Codec is the G.711 law (PCMU or PCMA) the participant hears the room in. What it sends is
	// decoded by each packet's payload type.
	Codec Codec
	// Send gets the participant's audio: one 20 ms frame (160 bytes in Codec) every 20 ms, on the
	// room's goroutine. It must not block (the whole room waits), must not keep frame after it
	// returns, and must not call Leave or Close (they wait for the frame in progress). An
	// RTPStream's Send makes each frame an RTP packet of the participant's own stream.
	//
	// Nil: the participant's audio is pulled instead, as 16-bit PCM, with Participant.Send (by a
	// sender with a 20 ms clock of its own, such as a call's media attachment); the room keeps up
	// to outFrames of it (80 ms) waiting, dropping the oldest. Codec may then be left empty.
	Send func(frame []byte)
	// Name labels the participant in listings: a caller's number, a call's ID.
	Name string
	// Muted joins muted: heard by nobody until SetMuted(false).
	Muted bool
	// Moderator marks a participant whose leaving ends the conference: when the last moderator
	// leaves, everyone else is taken out and the room closes (a room that never had one runs
	// until its last participant leaves).
	Moderator bool
}

// Participant is one party of a Room. Feed it what the party sends (ReceiveRTP or Receive).
type Participant struct {
	room   *Room
	id     int
	name   string
	mod    bool
	codec  Codec
	out    *law
	send   func([]byte)
	joined time.Time
	muted  atomic.Bool
	left   chan struct{}

	mu  sync.Mutex
	jit jitter

	pending pcmQueue // the mix waiting to be pulled (Send); with ParticipantConfig.Send nil

	// The room's clock goroutine's own.
	in    [frameSamples]int16
	adds  bool // in is part of this frame's sum
	frame [frameSamples]byte
}

// ParticipantInfo describes a participant.
type ParticipantInfo struct {
	ID        int       `json:"id"`
	Name      string    `json:"name"`
	Codec     string    `json:"codec"`
	Muted     bool      `json:"muted"`
	Moderator bool      `json:"moderator"`
	Joined    time.Time `json:"joined"`
}

// ID returns the participant's number in its room (1, 2, ... in the order they joined; never
// reused within a room).
func (p *Participant) ID() int { return p.id }

// Info describes the participant.
func (p *Participant) Info() ParticipantInfo {
	return ParticipantInfo{ID: p.id, Name: p.name, Codec: p.codec.Name, Muted: p.muted.Load(), Moderator: p.mod,
		Joined: p.joined}
}

// SetMuted mutes the participant (the others stop hearing it; it still hears them) or unmutes it.
// A change is told to the room's OnChange (ConferenceMuted, ConferenceUnmuted) while the
// participant is in the room.
func (p *Participant) SetMuted(muted bool) {
	r := p.room
	r.mu.Lock()
	if p.muted.Swap(muted) != muted && slices.Contains(r.members, p) {
		kind := ConferenceUnmuted
		if muted {
			kind = ConferenceMuted
		}
		r.changed(kind, p, "")
	}
	r.mu.Unlock()
	r.events.flush()
}

// moderator reports whether the participant is a moderator (ParticipantConfig.Moderator).
func (p *Participant) moderator() bool { return p.mod }

// Muted reports whether the participant is muted.
func (p *Participant) Muted() bool { return p.muted.Load() }

// Done is closed when the participant has left the room: Leave, kicked (Room.Participant(id).Leave
// from elsewhere), or the room closed.
func (p *Participant) Done() <-chan struct{} { return p.left }

// Leave takes the participant out of the room and waits until the room no longer uses it: Send is
// not called after Leave returns. The last participant to leave closes the room. It is safe to
// call more than once.
func (p *Participant) Leave() { p.leave(LeftHangup) }

// leave is Leave, telling why the participant left (LeftHangup, LeftKicked).
func (p *Participant) leave(why string) {
	p.room.remove(p, why)
	p.room.events.flush()
	p.room.settle()
}

// ReceiveRTP takes an RTP packet the participant sent (RFC 3550 §5.1): PCMU or PCMA audio is
// decoded into the participant's jitter buffer by its timestamp; other payload types
// (telephone-event, comfort noise) and anything that is not RTP are ignored. pkt is not kept.
func (p *Participant) ReceiveRTP(pkt []byte) {
	var h rtp.Header
	if _, err := h.Unmarshal(pkt); err != nil || h.Version != 2 {
		return
	}
	l := g711Law(h.PayloadType)
	if l == nil {
		return
	}
	payload, ok := rtpPayload(&h, pkt)
	if !ok {
		return
	}
	p.mu.Lock()
	p.jit.put(l, h.Timestamp, h.SSRC, payload)
	p.mu.Unlock()
}

// ReceivePayload takes the payload of a packet the participant sent, of payload type pt, for a
// source that has no RTP timestamps: payloads are played in the order they come, one after the
// other. Other payload types than PCMU and PCMA are ignored. payload is not kept.
func (p *Participant) ReceivePayload(payload []byte, pt uint8) {
	l := g711Law(pt)
	if l == nil {
		return
	}
	p.mu.Lock()
	p.jit.putNext(l, payload)
	p.mu.Unlock()
}

// Receive takes the audio of a packet the participant sent, decoded (16-bit PCM at 8 kHz), in the
// order they come, as ReceivePayload does. pcm is not kept.
func (p *Participant) Receive(pcm []int16) {
	p.mu.Lock()
	p.jit.putNextPCM(pcm)
	p.mu.Unlock()
}

// Send fills dst (160 samples) with the next 20 ms the participant hears, as 16-bit PCM, for a
// participant whose audio is pulled (ParticipantConfig.Send nil): silence when the room has none
// waiting (it just joined, or the room's clock is late).
func (p *Participant) Send(dst []int16) {
	p.mu.Lock()
	p.pending.pop(dst)
	p.mu.Unlock()
}

// takeFrame moves the participant's next frame into p.in, reporting whether any of it was received.
func (p *Participant) takeFrame() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.jit.take(&p.in)
}

// outFrames is how many frames of a pulled participant's mix wait at most: two clocks of 20 ms
// (the room's and the puller's) in any phase, with room for either to be late.
const outFrames = 4

// pcmQueue is a pulled participant's mix waiting to be taken.
type pcmQueue struct {
	frames  [outFrames][frameSamples]int16
	head, n int
}

// push returns the frame to fill next, dropping the oldest when all are waiting.
func (q *pcmQueue) push() *[frameSamples]int16 {
	if q.n == outFrames {
		q.head = (q.head + 1) % outFrames
		q.n--
	}
	f := &q.frames[(q.head+q.n)%outFrames]
	q.n++
	return f
}

// pop moves the oldest frame into dst (160 samples), or silence when none waits.
func (q *pcmQueue) pop(dst []int16) {
	if q.n == 0 {
		clear(dst[:frameSamples])
		return
	}
	copy(dst[:frameSamples], q.frames[q.head][:])
	q.head = (q.head + 1) % outFrames
	q.n--
}

// A participant whose audio is pulled is a call's application end as it is (Session.Attach).
var _ App = (*Participant)(nil)
