package b2bua

import (
	"sync"
	"time"
)

// callApp is the PBX's end of the caller's side while it answers the call itself (MediaApp): the
// sound playing to the caller, the recording of what the caller says, and the key presses not
// taken yet. The relay calls Receive and Send; the verbs (Play, Gather, Record) set what they do.
type callApp struct {
	mu     sync.Mutex
	sound  Frames        // what plays now; nil: silence
	played chan struct{} // closed when sound is over or replaced
	rec    *recorder     // the recording in progress, nil if none
	keys   []byte        // key presses not taken yet, oldest first
	keyed  chan struct{} // closed and replaced at each key press
	gone   chan struct{} // closed when the PBX stops being the caller's end
	once   sync.Once
	peer   MediaApp // a conference member (Conference): hears the caller, speaks to it; nil if none
}

var _ MediaApp = (*callApp)(nil)

func newCallApp() *callApp {
	return &callApp{keyed: make(chan struct{}), gone: make(chan struct{})}
}

// Receive takes the caller's audio: to the recording, if one runs, and to the conference, if the
// caller is in one.
func (a *callApp) Receive(pcm []int16) {
	a.mu.Lock()
	if a.rec != nil {
		a.rec.add(pcm)
	}
	peer := a.peer
	a.mu.Unlock()
	if peer != nil {
		peer.Receive(pcm)
	}
}

// Send gives the caller the next frame of the sound playing, else of the conference the caller is
// in, or silence.
func (a *callApp) Send(dst []int16) {
	a.mu.Lock()
	if a.sound != nil {
		if !a.sound.Samples(dst) {
			clear(dst)
			a.sound = nil
			close(a.played)
		}
		a.mu.Unlock()
		return
	}
	peer := a.peer
	a.mu.Unlock()
	if peer != nil {
		peer.Send(dst)
	}
}

// join makes m (a conference member) what the caller hears and speaks to, or nobody (nil).
func (a *callApp) join(m MediaApp) {
	a.mu.Lock()
	a.peer = m
	a.mu.Unlock()
}

// start plays f until it is over; the returned channel closes then, or when another sound
// replaces it or the application ends.
func (a *callApp) start(f Frames) <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sound != nil {
		close(a.played)
	}
	a.sound, a.played = f, make(chan struct{})
	return a.played
}

// silence stops the sound whose end is played, if it still plays.
func (a *callApp) silence(played <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sound != nil && a.played == played {
		a.sound = nil
		close(a.played)
	}
}

// key queues a key press of the caller.
func (a *callApp) key(digit byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.keys) < maxQueuedKeys {
		a.keys = append(a.keys, digit)
	}
	close(a.keyed)
	a.keyed = make(chan struct{})
}

// maxQueuedKeys bounds the key presses kept for the next Gather.
const maxQueuedKeys = 64

// pending returns whether keys wait, and the channel the next key press closes.
func (a *callApp) pending() (bool, <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.keys) > 0, a.keyed
}

// take removes and returns the oldest key press, 0 when none waits.
func (a *callApp) take() byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.keys) == 0 {
		return 0
	}
	k := a.keys[0]
	a.keys = a.keys[1:]
	return k
}

// takeKey removes the first key press equal to k and reports whether there was one.
func (a *callApp) takeKey(k byte) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, v := range a.keys {
		if v == k {
			a.keys = append(a.keys[:i:i], a.keys[i+1:]...)
			return true
		}
	}
	return false
}

// flush forgets the key presses not taken.
func (a *callApp) flush() {
	a.mu.Lock()
	a.keys = nil
	a.mu.Unlock()
}

// record starts r; stopRecording ends it and returns what was recorded.
func (a *callApp) record(r *recorder) {
	a.mu.Lock()
	a.rec = r
	a.mu.Unlock()
}

func (a *callApp) stopRecording() []int16 {
	a.mu.Lock()
	r := a.rec
	a.rec = nil
	a.mu.Unlock()
	if r == nil {
		return nil
	}
	return r.samples()
}

// stop ends the application: waiting verbs return.
func (a *callApp) stop() { a.once.Do(func() { close(a.gone) }) }

// recorder keeps the caller's audio, in chunks of a second from a pool: Receive, on the relay's
// goroutine, never copies what was recorded so far (a long message grew one slice, copying
// megabytes at each doubling, under the app's lock). It notes when the caller last was loud, by
// the clock: a phone with voice activity detection sends nothing (or comfort noise) while the
// caller is silent, so silence is the time since the last loud frame (recordUntil watches it).
type recorder struct {
	chunks []*[chunkSamples]int16 // full chunks, then the one being filled
	n      int                    // samples kept
	limit  int                    // samples at most
	loud   time.Time              // the last loud frame (the start before any)
	full   chan struct{}
	ended  bool
}

// chunkSamples is the size of a recording's chunks: a second at 8 kHz.
const chunkSamples = 8000

var chunkPool = sync.Pool{New: func() any { return new([chunkSamples]int16) }}

// silenceLevel is the mean absolute amplitude under which a frame counts as silence: about
// -42 dBFS, above the noise floor of a quiet line, below speech.
const silenceLevel = 256

func newRecorder(limit int) *recorder {
	return &recorder{limit: limit, loud: time.Now(), full: make(chan struct{}),
		chunks: make([]*[chunkSamples]int16, 0, limit/chunkSamples+1)}
}

// add keeps a frame of the caller's audio; the caller holds the app's lock.
func (r *recorder) add(pcm []int16) {
	if r.ended {
		return
	}
	r.keep(pcm[:min(len(pcm), r.limit-r.n)])
	var sum int
	for _, v := range pcm {
		if v < 0 {
			sum -= int(v)
		} else {
			sum += int(v)
		}
	}
	if len(pcm) > 0 && sum/len(pcm) >= silenceLevel {
		r.loud = time.Now()
	}
	if r.n >= r.limit {
		r.ended = true
		close(r.full)
	}
}

// keep appends pcm to the chunks.
func (r *recorder) keep(pcm []int16) {
	for len(pcm) > 0 {
		off := r.n % chunkSamples
		if off == 0 {
			r.chunks = append(r.chunks, chunkPool.Get().(*[chunkSamples]int16))
		}
		k := copy(r.chunks[len(r.chunks)-1][off:], pcm)
		r.n += k
		pcm = pcm[k:]
	}
}

// lastLoud returns when the caller last was loud; the caller holds the app's lock.
func (r *recorder) lastLoud() time.Time { return r.loud }

// samples returns what was recorded, in one slice, and gives the chunks back to the pool. The
// recorder is no longer added to (it was taken from the app).
func (r *recorder) samples() []int16 {
	out := make([]int16, 0, r.n)
	for i, c := range r.chunks {
		out = append(out, c[:min(chunkSamples, r.n-i*chunkSamples)]...)
		chunkPool.Put(c)
	}
	r.chunks = nil
	return out
}
