package media

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-audio/audio"
	"github.com/go-audio/wav"
)

// A recording's timeline is counted in samples (8 kHz) from the moment it started. Each side's
// packets are placed by their RTP timestamps, relative to an anchor: the first packet of a
// stream (or of a new SSRC) is placed where the wall clock says it ended, and the following ones
// where their timestamps say, so jitter does not move them and a lost packet leaves 20 ms of
// silence. When the timestamps and the wall clock part by more than maxDrift (a new timestamp
// base after hold, a clock running fast), the side is anchored again.
//
// The writer keeps the latest recordWindow samples of both channels in memory and writes to the
// file, every recordTick, what is older than recordDelay: a packet up to that late still finds
// its place; a later one is dropped. Where a side sent nothing (on hold, before it answered, lost
// packets) its channel is silent.

// tapPacket is one packet handed to the writer: a slot of the recorder's ring.
type tapPacket struct {
	caller bool
	law    uint8
	pt     uint8
	ssrc   uint32
	ts     uint32
	at     time.Duration // when it was received, since the recording started (monotonic clock)
	n      int
	data   [maxTapPayload]byte
}

// anchor ties a side's RTP timestamps to the timeline.
type anchor struct {
	valid bool
	ssrc  uint32
	ts    uint32
	pos   int64 // timeline position of the sample stamped ts
}

// recorder is one recording: the ring the relay fills and the writer that empties it into a WAV
// file.
type recorder struct {
	path  string
	start time.Time
	log   *slog.Logger

	mu         sync.Mutex // guards head and tail; the slots between them are the writer's
	head, tail uint64
	ring       [tapQueue]tapPacket
	dropped    atomic.Uint64 // packets that found the ring full

	stop chan time.Time // StopRecording's time: write up to it and end
	done chan struct{}  // closed when the writer has ended; err is then final
	err  error

	// The writer's own.
	f       *os.File
	enc     *wav.Encoder
	anchors [2]anchor
	win     [2][recordWindow]int16
	base    int64 // timeline position of win[.][0]: everything before it is written
	out     audio.IntBuffer
	late    uint64   // packets too late for their place
	refused [2]uint8 // a payload type not decoded, logged once per side
}

func newRecorder(f *os.File, path string, start time.Time, log *slog.Logger) *recorder {
	r := &recorder{path: path, start: start, log: log, f: f, stop: make(chan time.Time, 1), done: make(chan struct{})}
	r.enc = wav.NewEncoder(f, sampleRate, 16, 2, 1)
	r.out = audio.IntBuffer{Format: &audio.Format{NumChannels: 2, SampleRate: sampleRate}, SourceBitDepth: 16,
		Data: make([]int, 0, 2*recordWindow)}
	return r
}

// tap copies a packet's payload into the ring. A full ring drops it: the relay never waits.
func (r *recorder) tap(caller bool, law, pt uint8, ssrc, ts uint32, payload []byte, now time.Time) {
	r.mu.Lock()
	if r.head-r.tail >= tapQueue {
		r.mu.Unlock()
		r.dropped.Add(1)
		return
	}
	p := &r.ring[r.head%tapQueue]
	p.caller, p.law, p.pt, p.ssrc, p.ts, p.at = caller, law, pt, ssrc, ts, now.Sub(r.start)
	p.n = copy(p.data[:], payload)
	r.head++
	r.mu.Unlock()
}

// finish stops the writer, which writes the audio up to at and completes the file.
func (r *recorder) finish(at time.Time) error {
	r.stop <- at
	<-r.done
	return r.err
}

// run is the writer: every recordTick it places the queued packets and writes what is old
// enough; when stopped, everything up to the stop time.
func (r *recorder) run() {
	defer close(r.done)
	tick := time.NewTicker(recordTick)
	defer tick.Stop()
	var werr error
	for {
		select {
		case now := <-tick.C:
			r.drain()
			if werr == nil {
				werr = r.flush(r.position(now.Add(-recordDelay)))
			}
		case at := <-r.stop:
			r.drain()
			if werr == nil {
				werr = r.flush(r.position(at))
			}
			r.err = r.close(werr)
			return
		}
	}
}

// close completes the WAV header and closes the file.
func (r *recorder) close(werr error) error {
	err := errors.Join(werr, r.enc.Close(), r.f.Close())
	if d := r.dropped.Load(); d > 0 || r.late > 0 {
		r.log.Warn("recording missed packets", "path", r.path, "queue_full", d, "late", r.late)
	}
	if err != nil {
		return fmt.Errorf("media: recording %s: %w", r.path, err)
	}
	return nil
}

// position is the timeline position of time t.
func (r *recorder) position(t time.Time) int64 { return r.offset(t.Sub(r.start)) }

// offset is the timeline position of a time since the recording started.
func (r *recorder) offset(d time.Duration) int64 { return int64(d) * sampleRate / int64(time.Second) }

// drain places every packet in the ring.
func (r *recorder) drain() {
	r.mu.Lock()
	tail, head := r.tail, r.head
	r.mu.Unlock()
	for i := tail; i < head; i++ {
		r.place(&r.ring[i%tapQueue])
	}
	r.mu.Lock()
	r.tail = head
	r.mu.Unlock()
}

// place decodes a packet into its side's channel at the position its timestamp gives.
func (r *recorder) place(p *tapPacket) {
	ch := 1
	if p.caller {
		ch = 0
	}
	if !decodable(p.law) {
		if r.refused[ch] != p.pt+1 && p.pt != 13 { // comfort noise (RFC 3389) is silence anyway
			r.refused[ch] = p.pt + 1
			r.log.Warn("recording: payload type not decoded, recorded as silence", "path", r.path, "payload_type", p.pt)
		}
		return
	}
	n := int64(p.n)
	wall := r.offset(p.at) - n // where the packet's audio began, by the clock
	a := &r.anchors[ch]
	pos := wall
	if a.valid && a.ssrc == p.ssrc {
		pos = a.pos + int64(int32(p.ts-a.ts))
	}
	if !a.valid || a.ssrc != p.ssrc || abs64(pos-wall) > int64(maxDrift)*sampleRate/int64(time.Second) {
		*a = anchor{valid: true, ssrc: p.ssrc, ts: p.ts, pos: wall}
		pos = wall
	}
	data := p.data[:p.n]
	if pos < r.base { // too late: its start is written already
		skip := r.base - pos
		if skip >= n {
			r.late++
			return
		}
		data, pos = data[skip:], r.base
	}
	if end := pos + int64(len(data)); end > r.base+recordWindow {
		_ = r.flush(end - recordWindow) // a write error shows again at the next flush
	}
	c := PCMA
	if p.law == lawMu {
		c = PCMU
	}
	c.Decode(r.win[ch][pos-r.base:], data)
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// flush writes the timeline up to position upto and moves the window on.
func (r *recorder) flush(upto int64) error {
	n := upto - r.base
	if n <= 0 {
		return nil
	}
	var err error
	for n > 0 {
		k := min(n, recordWindow)
		r.out.Data = r.out.Data[:0]
		for i := range k {
			r.out.Data = append(r.out.Data, int(r.win[0][i]), int(r.win[1][i]))
		}
		if err == nil {
			err = r.enc.Write(&r.out)
		}
		for c := range r.win {
			copy(r.win[c][:], r.win[c][k:])
			clear(r.win[c][recordWindow-k:])
		}
		r.base += k
		n -= k
	}
	return err
}
