package media

import (
	"context"
	"fmt"
	"math"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// Conference rooms over real sockets: each participant is a phone on a UDP socket sending a tone
// of its own as G.711 RTP every 20 ms (Play), and the room's side of it is another socket, "the
// PBX's port facing the phone", read by a goroutine that feeds the participant; the room sends
// the phone its mix from that socket (RTPStream). Each phone decodes what it receives, and a
// Goertzel filter tells which tones are in it.

// sine is an endless tone at amplitude amp in codec c.
type sine struct {
	law       *law
	freq, amp float64
	n         int
}

func (s *sine) Frame(dst []byte) bool {
	for i := range frameSamples {
		dst[i] = s.law.encode(int16(s.amp * math.Sin(2*math.Pi*s.freq*float64(s.n+i)/sampleRate)))
	}
	s.n += frameSamples
	return true
}

// udpPhone is a phone in a room over UDP.
type udpPhone struct {
	t     *testing.T
	freq  float64
	codec Codec
	p     *Participant
	phone *net.UDPConn // the phone's socket
	pbx   *net.UDPConn // the room's socket facing it
	stop  context.CancelFunc
	wg    sync.WaitGroup

	mu    sync.Mutex
	heard []int16 // decoded, in arrival order
	bad   error
}

// dialIn puts a phone sending freq at amp in codec c into room r, the room's frames pushed to
// it (ParticipantConfig.Send with an RTPStream).
func dialIn(t *testing.T, r *Room, c Codec, freq, amp float64) *udpPhone {
	return dialInAs(t, r, c, freq, amp, false)
}

// dialInAs is dialIn; pulled, the participant's audio is pulled the way a call's media
// attachment does it: decoded PCM in (Receive), and a sender of its own pacing 20 ms frames
// (Play) that takes each from the room (Participant.Send) and encodes it.
func dialInAs(t *testing.T, r *Room, c Codec, freq, amp float64, pulled bool) *udpPhone {
	t.Helper()
	ph := &udpPhone{t: t, freq: freq, codec: c}
	ph.phone, ph.pbx = newEndpoint(t).conn, newEndpoint(t).conn
	phoneAt := ph.phone.LocalAddr().(*net.UDPAddr).AddrPort()
	pbxAt := ph.pbx.LocalAddr().(*net.UDPAddr).AddrPort()
	cfg := ParticipantConfig{Codec: c, Name: fmt.Sprintf("%v Hz", freq)}
	if !pulled {
		cfg.Send = NewRTPStream(c.PayloadType, func(pkt []byte) { ph.pbx.WriteToUDPAddrPort(pkt, phoneAt) }).Send
	}
	p, err := r.Join(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ph.p = p
	ctx, cancel := context.WithCancel(context.Background())
	ph.stop = cancel
	ph.wg.Add(3)
	go func() { // the PBX's side: what the phone sends goes into the room
		defer ph.wg.Done()
		buf := make([]byte, 1500)
		pcm := make([]int16, 1500)
		for {
			n, err := ph.pbx.Read(buf)
			if err != nil {
				return
			}
			if !pulled {
				p.ReceiveRTP(buf[:n])
				continue
			}
			var h rtp.Header
			if m, err := h.Unmarshal(buf[:n]); err == nil {
				for i, b := range buf[m:n] {
					pcm[i] = g711Law(h.PayloadType).dec[b]
				}
				p.Receive(pcm[:n-m])
			}
		}
	}()
	go func() { // the phone hears
		defer ph.wg.Done()
		ph.listen()
	}()
	go func() { // the phone speaks
		defer ph.wg.Done()
		Play(ctx, ph.phone, pbxAt, c.PayloadType, &sine{law: g711Law(c.PayloadType), freq: freq, amp: amp})
	}()
	if pulled {
		ph.wg.Add(1)
		go func() { // the PBX's sender, pulling from the room
			defer ph.wg.Done()
			Play(ctx, ph.pbx, phoneAt, c.PayloadType, &pulling{p: p, law: g711Law(c.PayloadType)})
		}()
	}
	t.Cleanup(ph.hangUp)
	return ph
}

// pulling is a Source that takes each frame from a pulled participant.
type pulling struct {
	p   *Participant
	law *law
	pcm [frameSamples]int16
}

func (s *pulling) Frame(dst []byte) bool {
	s.p.Send(s.pcm[:])
	for i, v := range s.pcm {
		dst[i] = s.law.encode(v)
	}
	return true
}

// listen decodes what the phone receives until its socket closes.
func (ph *udpPhone) listen() {
	buf := make([]byte, 1500)
	for {
		n, err := ph.phone.Read(buf)
		if err != nil {
			return
		}
		var pkt rtp.Packet
		err = pkt.Unmarshal(buf[:n])
		ph.mu.Lock()
		switch {
		case err != nil:
			ph.bad = err
		case pkt.PayloadType != ph.codec.PayloadType || len(pkt.Payload) != frameSamples:
			ph.bad = fmt.Errorf("payload type %d, %d bytes", pkt.PayloadType, len(pkt.Payload))
		default:
			for _, b := range pkt.Payload {
				ph.heard = append(ph.heard, g711Law(ph.codec.PayloadType).dec[b])
			}
		}
		ph.mu.Unlock()
	}
}

// hangUp stops the phone, takes it out of the room and closes its sockets. Safe to repeat.
func (ph *udpPhone) hangUp() {
	ph.stop()
	ph.p.Leave()
	ph.phone.Close()
	ph.pbx.Close()
	ph.wg.Wait()
}

// mark is how much the phone has heard so far.
func (ph *udpPhone) mark() int {
	ph.mu.Lock()
	defer ph.mu.Unlock()
	return len(ph.heard)
}

// listenWindow is how much audio a check takes, 500 ms: 2 Hz Goertzel bins, so every test tone
// (a multiple of 50 Hz) falls on one.
const listenWindow = 4000

// window waits until the phone has heard skip samples past from, and listenWindow more, and
// returns those.
func (ph *udpPhone) window(from, skip int) []int16 {
	ph.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ph.mu.Lock()
		n, bad := len(ph.heard), ph.bad
		var w []int16
		if n >= from+skip+listenWindow {
			w = append(w, ph.heard[from+skip:from+skip+listenWindow]...)
		}
		ph.mu.Unlock()
		switch {
		case bad != nil:
			ph.t.Fatalf("%v Hz phone received a bad packet: %v", ph.freq, bad)
		case w != nil:
			return w
		case time.Now().After(deadline):
			ph.t.Fatalf("%v Hz phone heard %d samples in 20 s, want %d", ph.freq, n-from, skip+listenWindow)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// settleSamples is audio to let pass before a check: the join tone (160 ms), the jitter buffer
// (40 ms), and packets in flight, with room to spare.
const settleSamples = 3200

// checkTones checks that each listening phone i hears the tone of every phone j for which
// hears(i, j) (at an eighth of its level at least: on a loaded machine packets are late or lost
// and the window has gaps) and not the others, its own among them (a twentieth of their level at
// most: mix-minus takes a listener's own frame out exactly, so only G.711 noise is left).
func checkTones(t *testing.T, listeners, phones []*udpPhone, amp float64, hears func(i, j int) bool) {
	t.Helper()
	marks := make([]int, len(listeners))
	for i, ph := range listeners {
		marks[i] = ph.mark()
	}
	for i, ph := range listeners {
		w := ph.window(marks[i], settleSamples)
		for j, other := range phones {
			a := toneLevel(w, other.freq)
			if want := hears(i, j); want && a < amp/8 || !want && a > amp/20 {
				t.Errorf("phone %d (%v Hz, %s) hears %v Hz at %.0f (tone amplitude %.0f), want heard: %v",
					i, ph.freq, ph.codec.Name, other.freq, a, amp, want)
			}
		}
	}
}

func TestRoomOverUDP(t *testing.T) {
	for _, tc := range []struct {
		name   string
		codecs []Codec
	}{
		{"PCMU", []Codec{PCMU, PCMU, PCMU}},
		{"PCMA", []Codec{PCMA, PCMA, PCMA}},
		{"mixed PCMU and PCMA", []Codec{PCMU, PCMA, PCMU}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewRoom(RoomConfig{Name: "udp"})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			const amp = 6000
			var phones []*udpPhone
			for i, f := range []float64{400, 900, 1700} {
				phones = append(phones, dialIn(t, r, tc.codecs[i], f, amp))
			}
			t.Log("each hears the other two, not itself")
			checkTones(t, phones, phones, amp, func(i, j int) bool { return i != j })

			t.Log("the 900 Hz phone muted: the others no longer hear it; it still hears them")
			phones[1].p.SetMuted(true)
			checkTones(t, phones, phones, amp, func(i, j int) bool { return i != j && j != 1 })

			t.Log("the 1700 Hz phone hangs up: the two left hear only each other (900 Hz unmuted)")
			phones[1].p.SetMuted(false)
			phones[2].hangUp()
			checkTones(t, phones[:2], phones, amp, func(i, j int) bool { return i != j && j != 2 })
		})
	}
}

// Participants whose audio is pulled by a sender of their own (as a call's media attachment
// does), beside one whose frames the room pushes, hear each other the same.
func TestRoomPulledOverUDP(t *testing.T) {
	r, err := NewRoom(RoomConfig{Name: "pulled"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const amp = 6000
	phones := []*udpPhone{
		dialInAs(t, r, PCMU, 400, amp, true),
		dialInAs(t, r, PCMA, 900, amp, true),
		dialInAs(t, r, PCMU, 1700, amp, false),
	}
	checkTones(t, phones, phones, amp, func(i, j int) bool { return i != j })
	phones[0].p.SetMuted(true)
	checkTones(t, phones, phones, amp, func(i, j int) bool { return i != j && j != 0 })
}

func TestRoomOverUDP20(t *testing.T) {
	r, err := NewRoom(RoomConfig{Name: "twenty"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const n, amp = 20, 1500 // nineteen tones at 1500 never clip
	var phones []*udpPhone
	for i := range n {
		c := PCMU
		if i%2 == 1 {
			c = PCMA
		}
		phones = append(phones, dialIn(t, r, c, float64(300+150*i), amp))
	}
	if r.Len() != n {
		t.Fatalf("%d in the room", r.Len())
	}
	checkTones(t, phones, phones, amp, func(i, j int) bool { return i != j })
}
