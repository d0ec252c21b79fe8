package media

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"github.com/pion/rtp"
)

// PBX-generated audio: G.711 frames from a tone or a WAV file, sent as RTP paced at 20 ms.

// Codec is a G.711 variant the PBX can generate audio in.
type Codec struct {
	Name        string
	PayloadType uint8
	encode      func(int16) uint8
	decode      func(uint8) int16
}

// The codecs of PBX audio (RFC 3551 §4.5.14).
var (
	PCMU = Codec{Name: "PCMU", PayloadType: 0, encode: ulaw.encode, decode: ulaw.decode}
	PCMA = Codec{Name: "PCMA", PayloadType: 8, encode: alaw.encode, decode: alaw.decode}
)

const (
	sampleRate     = 8000
	frameSamples   = 160 // 20 ms at 8 kHz
	framePeriod    = 20 * time.Millisecond
	maxAudioLength = 10 * time.Minute
)

// Source yields 20 ms frames of G.711 audio.
type Source interface {
	// Frame fills dst (160 bytes) with the next frame, and reports false when the audio is over.
	Frame(dst []byte) bool
}

// tone is a sum of sine waves switched on and off in a cadence.
type tone struct {
	codec   Codec
	freqs   []float64
	on, off int // samples
	n       int // samples produced
	limit   int // samples in all, 0: endless (Samples only)
}

// Tone returns an endless tone of the frequencies given (mixed at equal level), on for on and off
// for off (off 0: continuous). Ringback in Europe is Tone(c, 1s, 4s, 425), in North America
// Tone(c, 2s, 4s, 440, 480).
func Tone(c Codec, on, off time.Duration, freqs ...float64) Source {
	return &tone{codec: c, freqs: freqs, on: int(on.Seconds() * sampleRate), off: int(off.Seconds() * sampleRate)}
}

// Ringback is the European ringback tone (ETSI ES 201 970: 425 Hz, 1 s on, 4 s off).
func Ringback(c Codec) Source { return Tone(c, time.Second, 4*time.Second, 425) }

func (t *tone) Frame(dst []byte) bool {
	amp := 0.25 * math.MaxInt16 / float64(max(len(t.freqs), 1)) // about -12 dBFS, no clipping when mixed
	for i := range frameSamples {
		n := t.n + i
		var v float64
		if t.off == 0 || n%(t.on+t.off) < t.on {
			for _, f := range t.freqs {
				v += amp * math.Sin(2*math.Pi*f*float64(n)/sampleRate)
			}
		}
		dst[i] = t.codec.encode(int16(v))
	}
	t.n += frameSamples
	return true
}

// clip is G.711 audio held in memory, played once or looped.
type clip struct {
	data []byte // encoded
	pos  int
	loop bool
	fill byte // silence in the codec
}

// LoadWAV reads a WAV file for playback in codec c: 8 kHz mono 16-bit PCM or G.711 (A-law or
// µ-law), encoded in c on load. loop repeats it.
func LoadWAV(path string, c Codec, loop bool) (Source, error) {
	pcm, err := readWAV(path)
	if err != nil {
		return nil, err
	}
	data := make([]byte, len(pcm))
	c.Encode(data, pcm)
	return &clip{data: data, loop: loop, fill: c.encode(0)}, nil
}

func (c *clip) Frame(dst []byte) bool {
	if c.pos >= len(c.data) {
		if !c.loop {
			return false
		}
		c.pos = 0
	}
	n := copy(dst[:frameSamples], c.data[c.pos:])
	for i := n; i < frameSamples; i++ {
		dst[i] = c.fill
	}
	c.pos += n
	return true
}

// ErrNoDestination is returned by Play when it has nowhere to send.
var ErrNoDestination = errors.New("media: no destination for the audio")

// Play sends src as RTP (payload type pt, one 160-byte frame every 20 ms, a random SSRC and
// initial sequence number and timestamp, RFC 3550 §5.1) from conn to dst until src is over or ctx
// ends. Frames are paced against the start time, not slept one after another, so the pace does
// not drift.
func Play(ctx context.Context, conn *net.UDPConn, dst netip.AddrPort, pt uint8, src Source) error {
	if !dst.IsValid() {
		return ErrNoDestination
	}
	send := func(pkt []byte, dst netip.AddrPort) error {
		_, err := conn.WriteToUDPAddrPort(pkt, dst)
		return err
	}
	return play(ctx, send, func() netip.AddrPort { return dst }, pt, src)
}

// play is Play to a destination that may change while it plays (a side's learned source).
func play(ctx context.Context, send func([]byte, netip.AddrPort) error, dest func() netip.AddrPort, pt uint8, src Source) error {
	h := rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: uint16(rand.Uint32()), Timestamp: rand.Uint32(),
		SSRC: rand.Uint32(), Marker: true}
	frame := make([]byte, frameSamples)
	pkt := make([]byte, 12+frameSamples)
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		if !src.Frame(frame) {
			return nil
		}
		n, err := h.MarshalTo(pkt)
		if err != nil {
			return err
		}
		copy(pkt[n:], frame)
		if dst := dest(); dst.IsValid() {
			if err := send(pkt[:n+frameSamples], dst); err != nil {
				return fmt.Errorf("media: playing: %w", err)
			}
		}
		h.Marker = false
		h.SequenceNumber++
		h.Timestamp += frameSamples
		timer.Reset(time.Until(start.Add(time.Duration(i+1) * framePeriod)))
	}
}
