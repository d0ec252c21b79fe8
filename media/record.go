package media

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/pion/rtp"
)

// Call recording: the relay taps each packet it takes from either side (a copy into a ring the
// relay never waits on), and a writer goroutine of the recording decodes it and places it on the
// call's timeline, caller on the left channel, callee on the right (recorder.go).

// Errors of StartRecording and StopRecording.
var (
	// ErrRecording: the session records already.
	ErrRecording = errors.New("media: the call is recorded already")
	// ErrNotRecording: StopRecording on a session that does not record.
	ErrNotRecording = errors.New("media: the call is not being recorded")
	// ErrUndecodable: a side talks in a codec the PBX cannot decode (it decodes G.711 only: there
	// is no pure-Go G.722 or opus decoder among its dependencies).
	ErrUndecodable = errors.New("media: cannot record the call's codec")
)

// Recording knobs.
const (
	// tapQueue is how many packets wait for the writer at most (both sides, about 2.5 s of a
	// call at 20 ms). A packet that finds it full is not recorded (counted); the relay goes on.
	tapQueue = 256
	// maxTapPayload is the largest payload recorded whole: 120 ms of G.711.
	maxTapPayload = 960
	// recordDelay is how long the writer keeps the newest audio in memory before writing it, so
	// that packets arriving late (jitter) still take their place.
	recordDelay = 500 * time.Millisecond
	// recordWindow is the audio held in memory per channel (samples): recordDelay and the
	// writer's pace with room to spare.
	recordWindow = 3 * sampleRate
	// recordTick is how often the writer writes what is older than recordDelay.
	recordTick = 100 * time.Millisecond
	// maxDrift is how far a side's RTP clock may wander from the wall clock before its audio is
	// placed by the wall clock again: a new timestamp base after hold, a phone's clock running
	// fast or slow.
	maxDrift = 500 * time.Millisecond
)

// law tells how a payload type's audio is encoded, as far as the PBX's own decoding (recording,
// applications) cares.
const (
	lawNone  uint8 = iota // not named by either side's description
	lawMu                 // PCMU
	lawA                  // PCMA
	lawOther              // another codec, events, comfort noise: not decoded
)

// decodable reports whether law is one the PBX decodes.
func decodable(law uint8) bool { return law == lawMu || law == lawA }

// staticLaw is the law of an RTP payload type no description named: RFC 3551's static types.
func staticLaw(pt uint8) uint8 {
	switch pt {
	case 0:
		return lawMu
	case 8:
		return lawA
	}
	return lawOther
}

func lawOf(name string) uint8 {
	switch strings.ToUpper(name) {
	case "PCMU":
		return lawMu
	case "PCMA":
		return lawA
	}
	return lawNone
}

// speechCodec returns the first codec of the description's audio stream that carries speech
// (not telephone-event or comfort noise): the one the side sends in.
func speechCodec(formats []payloadType) string {
	for _, pt := range formats {
		switch strings.ToLower(pt.name) {
		case "telephone-event", "cn", "":
		default:
			return pt.name
		}
	}
	return ""
}

// StartRecording records the call from now on into a new WAV file at path (created, or
// truncated): 16-bit PCM at 8 kHz, two channels, the caller on the left and the callee on the
// right, aligned in time, with silence where a side sent nothing. It fails with ErrRecording when
// the session records already, ErrUndecodable when the latest description (as a rule the answer,
// which picks the call's codec) names first a codec other than G.711 (PCMU, PCMA), or the error
// of creating the file. The relay never waits for the file:
// packets are copied for a writer goroutine, and dropped (not recorded) should it fall behind.
func (s *Session) StartRecording(path string) error {
	if codec, _ := s.codec.Load().(string); codec != "" && !decodable(lawOf(codec)) {
		return fmt.Errorf("%w: the call's audio is %s, and the PBX decodes only PCMU and PCMA (no pure-Go decoder for others)", ErrUndecodable, codec)
	}
	s.recMu.Lock()
	defer s.recMu.Unlock()
	if s.closed.Load() {
		return errors.New("media: the session is closed")
	}
	if s.rec.Load() != nil {
		return ErrRecording
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("media: recording: %w", err)
	}
	r := newRecorder(f, path, time.Now(), s.r.log)
	s.rec.Store(r)
	go r.run()
	return nil
}

// StopRecording ends the recording, writes what is left and completes the WAV file; it returns
// the file's path. The file is as long as the recording lasted. A later StartRecording makes a
// new file. ErrNotRecording when the session does not record.
func (s *Session) StopRecording() (string, error) {
	s.recMu.Lock()
	defer s.recMu.Unlock()
	r := s.rec.Swap(nil)
	if r == nil {
		return "", ErrNotRecording
	}
	return r.path, r.finish(time.Now())
}

// Recording returns the path of the file being recorded, "" when the session does not record.
func (s *Session) Recording() string {
	if r := s.rec.Load(); r != nil {
		return r.path
	}
	return ""
}

// tap hands a packet sd sent, received at now, to the recording if there is one. It runs on the
// relay's loop for every packet: a copy into the recorder's queue, no allocation, no waiting.
func (s *Session) tap(sd *side, h *rtp.Header, pkt []byte, pts *ptTable, now time.Time) {
	r := s.rec.Load()
	if r == nil {
		return
	}
	payload, ok := rtpPayload(h, pkt)
	if !ok {
		return
	}
	law := staticLaw(h.PayloadType)
	if pts != nil {
		if pts.event[h.PayloadType&0x7f] {
			return // a key press: the audio around it is recorded, the event is not sound
		}
		if named := pts.law[h.PayloadType&0x7f]; named != lawNone {
			law = named
		}
	}
	r.tap(sd == s.a, law, h.PayloadType, h.SSRC, h.Timestamp, payload, now)
}

// closeRecording ends a recording when the session closes.
func (s *Session) closeRecording() {
	if _, err := s.StopRecording(); err != nil && !errors.Is(err, ErrNotRecording) {
		s.r.log.Warn("recording not completed", "error", err)
	}
}
