package b2bua

import (
	"sync"
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
}

var _ MediaApp = (*callApp)(nil)

func newCallApp() *callApp {
	return &callApp{keyed: make(chan struct{}), gone: make(chan struct{})}
}

// Receive takes the caller's audio: to the recording, if one runs.
func (a *callApp) Receive(pcm []int16) {
	a.mu.Lock()
	if a.rec != nil {
		a.rec.add(pcm)
	}
	a.mu.Unlock()
}

// Send gives the caller the next frame of the sound playing, or silence.
func (a *callApp) Send(dst []int16) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sound != nil && !a.sound.Samples(dst) {
		clear(dst)
		a.sound = nil
		close(a.played)
	}
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
	defer a.mu.Unlock()
	r := a.rec
	a.rec = nil
	if r == nil {
		return nil
	}
	return r.pcm
}

// stop ends the application: waiting verbs return.
func (a *callApp) stop() { a.once.Do(func() { close(a.gone) }) }

// recorder keeps the caller's audio and watches for silence.
type recorder struct {
	pcm     []int16
	limit   int // samples at most
	quiet   int // samples of silence in a row
	silence int // samples of silence that end the recording, 0: never
	full    chan struct{}
	hushed  chan struct{}
	ended   bool
}

// silenceLevel is the mean absolute amplitude under which a frame counts as silence: about
// -42 dBFS, above the noise floor of a quiet line, below speech.
const silenceLevel = 256

func newRecorder(limit, silence int) *recorder {
	return &recorder{limit: limit, silence: silence, pcm: make([]int16, 0, min(limit, 10*8000)),
		full: make(chan struct{}), hushed: make(chan struct{})}
}

// add keeps a frame of the caller's audio; the caller holds the app's lock.
func (r *recorder) add(pcm []int16) {
	if r.ended {
		return
	}
	n := min(len(pcm), r.limit-len(r.pcm))
	r.pcm = append(r.pcm, pcm[:n]...)
	var sum int
	for _, v := range pcm {
		if v < 0 {
			sum -= int(v)
		} else {
			sum += int(v)
		}
	}
	if len(pcm) > 0 && sum/len(pcm) < silenceLevel {
		r.quiet += len(pcm)
	} else {
		r.quiet = 0
	}
	switch {
	case len(r.pcm) >= r.limit:
		r.ended = true
		close(r.full)
	case r.silence > 0 && r.quiet >= r.silence:
		r.ended = true
		close(r.hushed)
	}
}
