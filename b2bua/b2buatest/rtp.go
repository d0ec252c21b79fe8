package b2buatest

import (
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/zaf/g711"

	"github.com/pbxkit/pbxkit/internal/audiotest"
)

// EventPT is the payload type a test phone's RTP uses for RFC 4733 telephone-events.
const EventPT = 101

// RTP is a test phone's audio: a UDP socket on 127.0.0.1 that sends and receives PCMU (payload
// type 0) and RFC 4733 events (EventPT), and keeps what it receives, decoded. It closes when the
// test ends.
type RTP struct {
	t    testing.TB
	conn *net.UDPConn
	done chan struct{}

	mu      sync.Mutex
	got     []int16     // the PCMU audio received, decoded, in arrival order
	arrived []time.Time // arrival of each packet of audio
	from    netip.AddrPort
	changed chan struct{}

	sendMu sync.Mutex // one sender at a time: sequence numbers and timestamps run on
	seq    uint16
	ts     uint32
	ssrc   uint32
}

// NewRTP opens a phone's RTP socket.
func NewRTP(t testing.TB) *RTP {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &RTP{t: t, conn: conn, done: make(chan struct{}), changed: make(chan struct{}),
		seq: uint16(rand.Uint32()), ts: rand.Uint32(), ssrc: rand.Uint32()}
	go r.read()
	t.Cleanup(func() {
		conn.Close()
		<-r.done
	})
	return r
}

// Port is the socket's port.
func (r *RTP) Port() int { return r.conn.LocalAddr().(*net.UDPAddr).Port }

// SDP is a description of the socket: PCMU and telephone-event (EventPT), sendrecv.
func (r *RTP) SDP() string {
	p := strconv.Itoa(r.Port())
	return "v=0\r\no=- " + p + " 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio " + p + " RTP/AVP 0 " + strconv.Itoa(EventPT) + "\r\na=rtpmap:0 PCMU/8000\r\n" +
		"a=rtpmap:" + strconv.Itoa(EventPT) + " telephone-event/8000\r\na=fmtp:" + strconv.Itoa(EventPT) + " 0-15\r\na=sendrecv\r\n"
}

func (r *RTP) read() {
	defer close(r.done)
	buf := make([]byte, 1500)
	for {
		n, from, err := r.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		var p rtp.Packet
		if p.Unmarshal(buf[:n]) != nil || p.PayloadType != 0 {
			continue
		}
		now := time.Now()
		r.mu.Lock()
		r.from = from
		for _, b := range p.Payload {
			r.got = append(r.got, g711.DecodeUlawFrame(b))
		}
		r.arrived = append(r.arrived, now)
		close(r.changed)
		r.changed = make(chan struct{})
		r.mu.Unlock()
	}
}

// Reset forgets what was received so far.
func (r *RTP) Reset() {
	r.mu.Lock()
	r.got, r.arrived = nil, nil
	r.mu.Unlock()
}

// Received returns the audio received so far and the arrival time of each packet.
func (r *RTP) Received() ([]int16, []time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int16(nil), r.got...), append([]time.Time(nil), r.arrived...)
}

// WaitAudio waits until n samples of audio arrived and returns them all, or fails the test
// after timeout.
func (r *RTP) WaitAudio(n int, timeout time.Duration) []int16 {
	r.t.Helper()
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		got, changed := len(r.got), r.changed
		r.mu.Unlock()
		if got >= n {
			s, _ := r.Received()
			return s
		}
		select {
		case <-changed:
		case <-deadline:
			r.t.Fatalf("received %d samples of audio within %v, want %d", got, timeout, n)
		}
	}
}

// WaitTone waits until the last block of received audio (the newest 160*frames samples) carries
// freq (at least half of its energy), or fails the test after timeout.
func (r *RTP) WaitTone(freq float64, frames int, timeout time.Duration) []int16 {
	r.t.Helper()
	n := 160 * frames
	deadline := time.After(timeout)
	var share float64
	for {
		r.mu.Lock()
		var block []int16
		if len(r.got) >= n {
			block = append(block, r.got[len(r.got)-n:]...)
		}
		changed := r.changed
		r.mu.Unlock()
		if block != nil {
			if share = audiotest.Share(block, freq); share > 0.5 {
				return block
			}
		}
		select {
		case <-changed:
		case <-deadline:
			r.t.Fatalf("no %v Hz tone received within %v (share of the last block %.2f)", freq, timeout, share)
		}
	}
}

// MediaAddr reads where a description wants its audio: its c= address and audio m= port.
func MediaAddr(t testing.TB, sdp []byte) netip.AddrPort {
	t.Helper()
	var ip netip.Addr
	port := 0
	for _, l := range strings.Split(string(sdp), "\n") {
		l = strings.TrimSpace(l)
		if f := strings.Fields(l); strings.HasPrefix(l, "c=") && len(f) == 3 {
			ip, _ = netip.ParseAddr(f[2])
		}
		if f := strings.Fields(l); strings.HasPrefix(l, "m=audio ") && len(f) >= 2 && port == 0 {
			port, _ = strconv.Atoi(f[1])
		}
	}
	if !ip.IsValid() || port == 0 {
		t.Fatalf("no media address in:\n%s", sdp)
	}
	return netip.AddrPortFrom(ip, uint16(port))
}

// send sends one packet to dst.
func (r *RTP) send(dst netip.AddrPort, pt uint8, marker bool, ts uint32, payload []byte) {
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, Marker: marker, SequenceNumber: r.seq,
		Timestamp: ts, SSRC: r.ssrc}, Payload: payload}
	r.seq++
	b, err := p.Marshal()
	if err != nil {
		r.t.Error(err)
		return
	}
	if _, err := r.conn.WriteToUDPAddrPort(b, dst); err != nil {
		r.t.Logf("rtp send: %v", err)
	}
}

// SendTone sends a PCMU sine at freq to dst, one packet every 20 ms, until the returned function
// is called (which waits for the sender to stop).
func (r *RTP) SendTone(dst netip.AddrPort, freq float64) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		payload := make([]byte, 160)
		for i := 0; ; i++ {
			r.sendMu.Lock()
			for j, v := range audiotest.Tone(freq, 8000, i*160, 160) {
				payload[j] = g711.EncodeUlawFrame(v)
			}
			r.send(dst, 0, i == 0, r.ts, payload)
			r.ts += 160
			r.sendMu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { cancel(); <-done }) }
}

// SendDigits sends each key of digits to dst as an RFC 4733 event (payload type EventPT): three
// packets while the key is down, then three end packets, as phones do; 100 ms between keys.
func (r *RTP) SendDigits(dst netip.AddrPort, digits string) {
	r.t.Helper()
	const keys = "0123456789*#ABCD"
	for _, d := range digits {
		code := strings.IndexRune(keys, d)
		if code < 0 {
			r.t.Fatalf("no RFC 4733 event for %q", d)
		}
		r.sendMu.Lock()
		ts := r.ts
		r.ts += 800
		for i := range 6 {
			end := byte(0)
			if i >= 3 {
				end = 0x80
			}
			dur := uint16(160 * min(i+1, 4))
			r.send(dst, EventPT, i == 0, ts, []byte{byte(code), end | 10, byte(dur >> 8), byte(dur)})
			time.Sleep(20 * time.Millisecond)
		}
		r.sendMu.Unlock()
		time.Sleep(100 * time.Millisecond)
	}
}
