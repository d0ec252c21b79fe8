package media

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/internal/audiotest"
	"github.com/pion/rtp"
	"go.uber.org/goleak"
)

// manualRoom is a room without its clock: the test mixes each frame with mixFrame.
func manualRoom(t testing.TB, cfg RoomConfig) *Room {
	t.Helper()
	r, err := NewRoom(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.noClock = true
	t.Cleanup(r.Close)
	return r
}

// listener keeps the frames a participant is sent.
type listener struct {
	codec  Codec
	mu     sync.Mutex
	frames [][]byte
}

func (l *listener) send(f []byte) {
	l.mu.Lock()
	l.frames = append(l.frames, slices.Clone(f))
	l.mu.Unlock()
}

// count returns how many frames it was sent.
func (l *listener) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.frames)
}

// pcm decodes the frames it was sent from frame from on.
func (l *listener) pcm(from int) []int16 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []int16
	for _, f := range l.frames[from:] {
		for _, b := range f {
			out = append(out, g711Law(l.codec.PayloadType).dec[b])
		}
	}
	return out
}

func join(t testing.TB, r *Room, c Codec, muted bool) (*Participant, *listener) {
	t.Helper()
	l := &listener{codec: c}
	p, err := r.Join(ParticipantConfig{Codec: c, Send: l.send, Muted: muted})
	if err != nil {
		t.Fatal(err)
	}
	return p, l
}

// rtpOf is an RTP packet of payload type pt.
func rtpOf(pt uint8, ssrc, ts uint32, payload []byte) []byte {
	b, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SSRC: ssrc, Timestamp: ts}, Payload: payload}).Marshal()
	return b
}

// speaker is what a participant says in a frame: sample k is base+7k, encoded in its codec.
type speaker struct {
	codec Codec
	base  int16
}

func (s speaker) payload() []byte {
	b := make([]byte, frameSamples)
	for k := range b {
		b[k] = g711Law(s.codec.PayloadType).encode(s.base + int16(7*k))
	}
	return b
}

// heard is sample k as the room decodes it.
func (s speaker) heard(k int) int32 {
	l := g711Law(s.codec.PayloadType)
	return int32(l.dec[l.encode(s.base+int16(7*k))])
}

// mixRound has every unmuted speaker send a frame (timestamp ts) and mixes until it plays (the
// jitter buffer holds a stream's first packet two frames); it returns each listener's last frame.
func mixRound(t *testing.T, r *Room, ps []*Participant, ls []*listener, sp []speaker, ts uint32) [][]byte {
	t.Helper()
	for i, p := range ps {
		p.ReceiveRTP(rtpOf(sp[i].codec.PayloadType, uint32(i+1), ts, sp[i].payload()))
	}
	for range 3 {
		r.mixFrame()
	}
	var last [][]byte
	for _, l := range ls {
		last = append(last, l.frames[len(l.frames)-1])
	}
	return last
}

// checkHears checks that frame is, sample by sample, the sum of what the speakers named by from
// said (decoded), saturated and encoded in c.
func checkHears(t *testing.T, who string, frame []byte, c Codec, sp []speaker, from ...int) {
	t.Helper()
	for k := range frameSamples {
		var sum int32
		for _, i := range from {
			sum += sp[i].heard(k)
		}
		if want := g711Law(c.PayloadType).encode(saturate(sum)); frame[k] != want {
			t.Fatalf("%s, sample %d: %#x, want %#x (the sum of speakers %v)", who, k, frame[k], want, from)
		}
	}
}

func TestRoomMixMinus(t *testing.T) {
	for _, tc := range []struct {
		name  string
		bases []int16
	}{
		{"plain", []int16{1000, -3000, 7000}},
		{"saturated high", []int16{20000, 21000, 22000}},
		{"saturated low", []int16{-20000, -21000, -22000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := manualRoom(t, RoomConfig{NoTones: true})
			codecs := []Codec{PCMU, PCMU, PCMA}
			var ps []*Participant
			var ls []*listener
			var sp []speaker
			for i, c := range codecs {
				p, l := join(t, r, c, false)
				ps, ls, sp = append(ps, p), append(ls, l), append(sp, speaker{c, tc.bases[i]})
			}
			last := mixRound(t, r, ps, ls, sp, 0)
			for i, l := range ls {
				if len(l.frames) != 3 {
					t.Fatalf("participant %d got %d frames, want 3", i, len(l.frames))
				}
				for _, f := range l.frames[:2] { // the jitter buffer's delay: silence
					checkHears(t, "before", f, l.codec, sp)
				}
			}
			checkHears(t, "A", last[0], PCMU, sp, 1, 2)
			checkHears(t, "B", last[1], PCMU, sp, 0, 2)
			checkHears(t, "C", last[2], PCMA, sp, 0, 1)
		})
	}
}

func TestRoomMute(t *testing.T) {
	r := manualRoom(t, RoomConfig{NoTones: true})
	sp := []speaker{{PCMU, 1000}, {PCMU, -2500}, {PCMA, 4000}}
	a, la := join(t, r, PCMU, false)
	b, lb := join(t, r, PCMU, true)
	c, lc := join(t, r, PCMA, false)
	ps, ls := []*Participant{a, b, c}, []*listener{la, lb, lc}

	last := mixRound(t, r, ps, ls, sp, 0)
	checkHears(t, "A (B muted)", last[0], PCMU, sp, 2)
	checkHears(t, "B (muted, still hears)", last[1], PCMU, sp, 0, 2)
	checkHears(t, "C (B muted)", last[2], PCMA, sp, 0)
	if !b.Muted() || !b.Info().Muted {
		t.Fatal("B does not say it is muted")
	}

	b.SetMuted(false)
	a.SetMuted(true)
	last = mixRound(t, r, ps, ls, sp, 480)
	checkHears(t, "A (muted)", last[0], PCMU, sp, 1, 2)
	checkHears(t, "B (unmuted)", last[1], PCMU, sp, 2)
	checkHears(t, "C", last[2], PCMA, sp, 1)
}

// Everyone in the room hears a rising beep when someone joins and a falling one when someone
// leaves, once.
func TestRoomJoinLeaveTones(t *testing.T) {
	r := manualRoom(t, RoomConfig{})
	_, la := join(t, r, PCMU, false)
	mixFrames := func(n int) {
		for range n {
			r.mixFrame()
		}
	}
	// checkTone checks the 160 ms of la's audio from frame from on: first f1 then f2, then silence.
	checkTone := func(what string, from int, f1, f2 float64) {
		t.Helper()
		pcm := la.pcm(from)
		first, second, after := pcm[:640], pcm[640:1280], pcm[1280:]
		for _, c := range []struct {
			part  []int16
			f     float64
			tone  bool
			label string
		}{
			{first, f1, true, "first note"}, {first, f2, false, "first note"},
			{second, f2, true, "second note"}, {second, f1, false, "second note"},
			{after, f1, false, "after"}, {after, f2, false, "after"},
		} {
			a := toneLevel(c.part, c.f)
			if c.tone && a < 4000 || !c.tone && a > 300 {
				t.Fatalf("%s, %s: %v Hz at amplitude %.0f", what, c.label, c.f, a)
			}
		}
	}
	mixFrames(12)
	checkTone("own join", 0, 600, 1000)

	b, _ := join(t, r, PCMA, false)
	mixFrames(12)
	checkTone("B joins", 12, 600, 1000)

	b.Leave()
	mixFrames(12)
	checkTone("B leaves", 24, 1000, 600)

	quiet := manualRoom(t, RoomConfig{NoTones: true})
	_, lq := join(t, quiet, PCMU, false)
	join(t, quiet, PCMU, false)
	quiet.mixFrame()
	for _, v := range lq.pcm(0) {
		if v != 0 {
			t.Fatal("NoTones: a room played a tone")
		}
	}
}

func TestRoomJoinRefused(t *testing.T) {
	r := manualRoom(t, RoomConfig{MaxParticipants: 2})
	join(t, r, PCMU, false)
	join(t, r, PCMA, false)
	if _, err := r.Join(ParticipantConfig{Codec: PCMU, Send: func([]byte) {}}); !errors.Is(err, ErrRoomFull) {
		t.Fatalf("a third in a room of 2: %v", err)
	}
	other := manualRoom(t, RoomConfig{})
	g722 := Codec{Name: "G722", PayloadType: 9}
	if _, err := other.Join(ParticipantConfig{Codec: g722, Send: func([]byte) {}}); !errors.Is(err, ErrNoCodec) {
		t.Fatalf("G.722: %v", err)
	}
	if _, err := other.Join(ParticipantConfig{Codec: g722}); !errors.Is(err, ErrNoCodec) {
		t.Fatalf("G.722, pulled: %v", err)
	}
	if _, err := other.Join(ParticipantConfig{Name: "pulled, no codec"}); err != nil {
		t.Fatalf("a pulled participant naming no codec: %v", err)
	}
	if _, err := NewRoom(RoomConfig{MaxParticipants: -1}); err == nil {
		t.Fatal("a negative MaxParticipants was taken")
	}
}

// The room's goroutine starts with the first participant and ends with the last; the room then
// takes nobody, and nothing is sent to a participant after its Leave returned.
func TestRoomLifecycle(t *testing.T) {
	defer goleak.VerifyNone(t)
	r, err := NewRoom(RoomConfig{Name: "lifecycle"})
	if err != nil {
		t.Fatal(err)
	}
	var gone atomic.Bool
	var after atomic.Int32
	a, err := r.Join(ParticipantConfig{Codec: PCMU, Name: "101", Send: func([]byte) {
		if gone.Load() {
			after.Add(1)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	b, lb := join(t, r, PCMA, false)
	c, _ := join(t, r, PCMU, false)
	if got := r.Participants(); len(got) != 3 || got[0].Name != "101" || got[0].Codec != "PCMU" || got[1].Codec != "PCMA" ||
		got[0].ID != a.ID() || r.Participant(b.ID()) != b || r.Participant(99) != nil || r.Len() != 3 {
		t.Fatalf("participants: %+v", got)
	}
	waitFrames(t, lb, 5)

	a.Leave()
	gone.Store(true)
	select {
	case <-a.Done():
	default:
		t.Fatal("Done not closed after Leave")
	}
	n := lb.count()
	waitFrames(t, lb, n+5) // the room goes on for the others...
	if after.Load() != 0 {
		t.Fatal("a participant was sent a frame after Leave returned") // ...and not for A
	}
	a.Leave() // again: nothing happens

	c.Leave()
	select {
	case <-r.Done():
		t.Fatal("the room closed with a participant in it")
	default:
	}
	b.Leave()
	select {
	case <-r.Done():
	default:
		t.Fatal("the room did not close when its last participant left")
	}
	if _, err := r.Join(ParticipantConfig{Codec: PCMU, Send: func([]byte) {}}); !errors.Is(err, ErrRoomClosed) {
		t.Fatalf("joining a closed room: %v", err)
	}
}

func TestRoomClose(t *testing.T) {
	defer goleak.VerifyNone(t)
	r, _ := NewRoom(RoomConfig{})
	p, l := join(t, r, PCMU, false)
	waitFrames(t, l, 1)
	r.Close()
	r.Close()
	for _, ch := range []<-chan struct{}{p.Done(), r.Done()} {
		select {
		case <-ch:
		default:
			t.Fatal("Close left the room or a participant open")
		}
	}
	p.Leave()

	empty, _ := NewRoom(RoomConfig{})
	empty.Close()
	<-empty.Done()
}

// waitFrames waits until l was sent n frames.
func waitFrames(t *testing.T, l *listener, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for l.count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d frames in 10 s, want %d", l.count(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A frame allocates nothing, from the packets' arrival to the RTP packets sent.
func TestRoomMixAllocatesNothing(t *testing.T) {
	r, ps := benchRoom(t, 20)
	pkts := benchPackets(20)
	ts := uint32(0)
	allocs := testing.AllocsPerRun(200, func() {
		feed(ps, pkts, ts)
		ts += frameSamples
		r.mixFrame()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations a frame", allocs)
	}

	pulled := manualRoom(t, RoomConfig{})
	var qs []*Participant
	for range 20 {
		p, err := pulled.Join(ParticipantConfig{Codec: PCMA})
		if err != nil {
			t.Fatal(err)
		}
		qs = append(qs, p)
	}
	pcm, out := make([]int16, frameSamples), make([]int16, frameSamples)
	allocs = testing.AllocsPerRun(200, func() {
		for _, p := range qs {
			p.Receive(pcm)
		}
		pulled.mixFrame()
		for _, p := range qs {
			p.Send(out)
		}
	})
	if allocs != 0 {
		t.Fatalf("pulled: %v allocations a frame", allocs)
	}
}

// benchRoom is a room of n participants, half PCMU and half PCMA, each sent as RTP to nowhere.
func benchRoom(t testing.TB, n int) (*Room, []*Participant) {
	r := manualRoom(t, RoomConfig{NoTones: true})
	var ps []*Participant
	for i := range n {
		c := PCMU
		if i%2 == 1 {
			c = PCMA
		}
		p, err := r.Join(ParticipantConfig{Codec: c, Send: NewRTPStream(c.PayloadType, func([]byte) {}).Send})
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	return r, ps
}

// benchPackets are n participants' RTP packets: each a different tone at a moderate level.
func benchPackets(n int) [][]byte {
	var pkts [][]byte
	for i := range n {
		c := PCMU
		if i%2 == 1 {
			c = PCMA
		}
		payload := make([]byte, frameSamples)
		for k := range payload {
			payload[k] = g711Law(c.PayloadType).encode(int16(2000 * math.Sin(2*math.Pi*float64(300+150*i)*float64(k)/sampleRate)))
		}
		pkts = append(pkts, rtpOf(c.PayloadType, uint32(i+1), 0, payload))
	}
	return pkts
}

// feed hands each participant its packet, stamped ts.
func feed(ps []*Participant, pkts [][]byte, ts uint32) {
	for i, p := range ps {
		pkt := pkts[i]
		pkt[4], pkt[5], pkt[6], pkt[7] = byte(ts>>24), byte(ts>>16), byte(ts>>8), byte(ts)
		p.ReceiveRTP(pkt)
	}
}

func TestRTPStream(t *testing.T) {
	var got []rtp.Packet
	s := NewRTPStream(PCMA.PayloadType, func(b []byte) {
		var p rtp.Packet
		if err := p.Unmarshal(slices.Clone(b)); err != nil {
			t.Fatal(err)
		}
		got = append(got, p)
	})
	for i := range 3 {
		s.Send(frameOf(byte(i)))
	}
	for i, p := range got {
		if p.PayloadType != 8 || p.SSRC != s.SSRC() || len(p.Payload) != frameSamples || p.Payload[0] != byte(i) ||
			p.Marker != (i == 0) || i > 0 && (p.SequenceNumber != got[i-1].SequenceNumber+1 || p.Timestamp != got[i-1].Timestamp+frameSamples) {
			t.Fatalf("packet %d: %+v", i, p.Header)
		}
	}
	quiet, f := NewRTPStream(PCMU.PayloadType, func([]byte) {}), frameOf(0)
	if allocs := testing.AllocsPerRun(100, func() { quiet.Send(f) }); allocs != 0 {
		t.Fatalf("%v allocations a packet", allocs)
	}
}

// A participant whose audio is pulled (no Send) gets the same mix-minus, as PCM, and takes
// decoded PCM; the room keeps the last outFrames frames for it.
func TestRoomPulled(t *testing.T) {
	r := manualRoom(t, RoomConfig{NoTones: true})
	a, la := join(t, r, PCMU, false) // pushed, RTP in
	b, err := r.Join(ParticipantConfig{Codec: PCMA})
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.Join(ParticipantConfig{})
	if err != nil {
		t.Fatal(err)
	}
	sp := speaker{PCMU, 1200}
	a.ReceiveRTP(rtpOf(PCMU.PayloadType, 1, 0, sp.payload()))
	pcmB, pcmC := make([]int16, frameSamples), make([]int16, frameSamples)
	for k := range frameSamples {
		pcmB[k], pcmC[k] = int16(-3000+5*k), int16(9000-11*k)
	}
	b.Receive(pcmB)
	c.Receive(pcmC)
	for range 3 {
		r.mixFrame()
	}
	got := make([]int16, frameSamples)
	for i := range 2 { // the jitter buffer's delay
		if b.Send(got); slices.ContainsFunc(got, func(v int16) bool { return v != 0 }) {
			t.Fatalf("frame %d: not silence", i)
		}
	}
	b.Send(got)
	for k, v := range got {
		if want := int16(sp.heard(k) + int32(pcmC[k])); v != want {
			t.Fatalf("B, sample %d: %d, want %d (A + C)", k, v, want)
		}
	}
	for range 3 {
		c.Send(got)
	}
	for k, v := range got {
		if want := int16(sp.heard(k) + int32(pcmB[k])); v != want {
			t.Fatalf("C, sample %d: %d, want %d (A + B)", k, v, want)
		}
	}
	// A (pushed) hears B and C, encoded.
	if f := la.frames[2]; f[0] != ulaw.encode(pcmB[0]+pcmC[0]) || f[100] != ulaw.encode(pcmB[100]+pcmC[100]) {
		t.Fatal("A does not hear B and C")
	}

	// Nobody pulls for 6 frames: the room keeps the last 4 (the 2 before are dropped).
	for range 6 {
		b.Receive(pcmB)
		c.Receive(pcmC) // B's frames carry C (after C's stream starts again)
		r.mixFrame()
	}
	n := 0
	for {
		b.Send(got)
		if !slices.ContainsFunc(got, func(v int16) bool { return v != 0 }) {
			break
		}
		n++
	}
	if n != outFrames {
		t.Fatalf("%d frames waited, want %d", n, outFrames)
	}
}

// When the last moderator leaves, everyone else is taken out and the room closes; a room without
// moderators runs until its last participant leaves (TestRoomLifecycle).
func TestRoomModerator(t *testing.T) {
	defer goleak.VerifyNone(t)
	r, _ := NewRoom(RoomConfig{})
	join := func(mod bool) *Participant {
		p, err := r.Join(ParticipantConfig{Codec: PCMU, Send: func([]byte) {}, Moderator: mod})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	m1, m2, a, b := join(true), join(true), join(false), join(false)
	if !m1.Info().Moderator || a.Info().Moderator {
		t.Fatal("Info does not tell moderators")
	}
	m1.Leave()
	if r.Len() != 3 {
		t.Fatalf("one moderator of two left: %d in the room, want 3", r.Len())
	}
	a.Leave()
	m2.Leave()
	select {
	case <-b.Done():
	default:
		t.Fatal("the last moderator left, and a participant is still in the room")
	}
	select {
	case <-r.Done():
	default:
		t.Fatal("the last moderator left, and the room is open")
	}
}

// toneLevel is the amplitude of freq in samples at 8 kHz: about A for a sine of amplitude A
// (audiotest.Goertzel gives the power, A²/4).
func toneLevel(samples []int16, freq float64) float64 {
	return 2 * math.Sqrt(audiotest.Goertzel(samples, 8000, freq))
}

// A room of its own (no Conferences) tells its changes to RoomConfig.OnChange; an empty room
// closed tells nothing.
func TestRoomOnChange(t *testing.T) {
	defer goleak.VerifyNone(t)
	var got []string
	r, _ := NewRoom(RoomConfig{Name: "own", OnChange: func(ev ConferenceEvent) {
		got = append(got, fmt.Sprintf("%s %s %d %s", ev.Kind, ev.Room, ev.Participant.ID, ev.Why))
	}})
	a, _ := join(t, r, PCMU, false)
	join(t, r, PCMA, true)
	a.Leave()
	r.Close()
	want := "conference.joined own 1 |conference.joined own 2 |conference.muted own 2 |" +
		"conference.left own 1 hangup|conference.left own 2 ended|conference.ended own 0 "
	if strings.Join(got, "|") != want {
		t.Fatalf("told %q", got)
	}

	empty, _ := NewRoom(RoomConfig{OnChange: func(ev ConferenceEvent) { t.Errorf("an empty room told %+v", ev) }})
	empty.Close()
}
