package b2bua

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// Call recording: both sides of a bridged call into one stereo WAV file (the caller on the left
// channel, the callee on the right), through the media relay (MediaSession.StartRecording). A
// recording asked for before the call is answered starts when it is; one stopped and started
// again makes a new file. The record names every file (Record.Recordings).

// Errors of RecordCall and StopRecordCall.
var (
	// ErrRecording: the call is recorded already (or will be, once answered).
	ErrRecording = errors.New("b2bua: the call is recorded already")
	// ErrNotRecording: StopRecordCall on a call that is not recorded.
	ErrNotRecording = errors.New("b2bua: the call is not being recorded")
	// ErrUndecodable is wrapped by the media relay's error when the call's codec cannot be
	// decoded for recording (the PBX decodes G.711 only).
	ErrUndecodable = errors.New("b2bua: the call's codec cannot be recorded")
	// ErrCallEnded: the call has ended.
	ErrCallEnded = errors.New("b2bua: the call has ended")
)

// recordingState is the call's recording. Guarded by the call's mu.
type recordingState struct {
	path    string // the file being recorded, or waiting for the answer; "" none
	waiting bool   // asked for before the answer: starts when the call is answered
	files   []string
}

// RecordCall records the call into a new stereo WAV file in Config.RecordingsDir, named after
// the call's ID and the time, and returns its path. On a call not answered yet the recording
// starts when a callee answers (and the path is returned now). ErrNoMedia without a media relay,
// ErrRecording when the call is recorded already, ErrUndecodable (wrapped) when its codec cannot
// be decoded, ErrCallEnded when it has ended; the call goes on unrecorded in every case.
func (c *Call) RecordCall() (string, error) {
	m := c.mediaSession()
	if m == nil {
		c.log.Warn("call not recorded: the PBX relays no media")
		return "", ErrNoMedia
	}
	path := c.recordingPath(time.Now())
	c.mu.Lock()
	switch {
	case c.state == stateEnded || c.state == stateRefused:
		c.mu.Unlock()
		return "", ErrCallEnded
	case c.recording.path != "":
		c.mu.Unlock()
		return "", ErrRecording
	case !c.state.up():
		c.recording = recordingState{path: path, waiting: true, files: c.recording.files}
		c.mu.Unlock()
		c.log.Info("call will be recorded once answered", "path", path)
		return path, nil
	}
	c.recording.path = path
	c.mu.Unlock()
	if err := c.startRecording(m, path); err != nil {
		return "", err
	}
	return path, nil
}

// startRecording starts recording into path, which the call's recording state already holds;
// on failure the state is cleared again.
func (c *Call) startRecording(m MediaSession, path string) error {
	if err := m.StartRecording(path); err != nil {
		c.log.Warn("call not recorded", "path", path, "error", err)
		c.mu.Lock()
		if c.recording.path == path {
			c.recording.path, c.recording.waiting = "", false
		}
		c.mu.Unlock()
		return err
	}
	c.mu.Lock()
	c.recording.waiting = false
	c.recording.files = append(c.recording.files, path)
	c.mu.Unlock()
	c.log.Info("call recording started", "path", path)
	c.emitWith(Event{Kind: CallRecordingStarted, Path: path})
	return nil
}

// recordOnAnswer starts the recording asked for before the call was answered.
func (c *Call) recordOnAnswer() {
	c.mu.Lock()
	path, waiting := c.recording.path, c.recording.waiting
	m := c.media.session
	c.mu.Unlock()
	if waiting && m != nil {
		_ = c.startRecording(m, path) // logged there; the call goes on unrecorded
	}
}

// StopRecordCall stops recording the call, completes the file and returns its path.
// ErrNotRecording when the call is not recorded; a recording still waiting for the answer is
// called off.
func (c *Call) StopRecordCall() (string, error) {
	c.mu.Lock()
	path, waiting, m := c.recording.path, c.recording.waiting, c.media.session
	ended := c.state == stateEnded
	c.recording.path, c.recording.waiting = "", false
	c.mu.Unlock()
	switch {
	case path == "" && ended:
		return "", ErrCallEnded
	case path == "":
		return "", ErrNotRecording
	case waiting:
		c.log.Info("recording called off before the answer", "path", path)
		return path, nil
	}
	_, err := m.StopRecording()
	if errors.Is(err, ErrNotRecording) {
		err = nil // the call ended meanwhile: closing the relay completed the file
	}
	if err != nil {
		c.log.Warn("recording not completed", "path", path, "error", err)
	} else {
		c.log.Info("call recording stopped", "path", path)
	}
	c.emitWith(Event{Kind: CallRecordingStopped, Path: path})
	return path, err
}

// Recording returns the path of the file the call is being recorded into, "" when it is not.
func (c *Call) Recording() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.recording.waiting {
		return ""
	}
	return c.recording.path
}

// endRecording notes, when the call ends, that its recording ended with it (the relay's Close
// completes the file): the record gets its files and the stream an event.
func (c *Call) endRecording() {
	c.mu.Lock()
	path, waiting := c.recording.path, c.recording.waiting
	c.recording.path, c.recording.waiting = "", false
	c.rec.Recordings = c.recording.files
	c.mu.Unlock()
	if path != "" && !waiting {
		c.emitWith(Event{Kind: CallRecordingStopped, Path: path})
	}
}

// recordingPath names a new recording of the call: the Call-ID with anything but letters, digits,
// '-', '_' and '.' replaced (a Call-ID may hold '@', '/' or worse), and the time to the
// millisecond, in Config.RecordingsDir.
func (c *Call) recordingPath(now time.Time) string {
	id := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, c.id)
	id = strings.TrimLeft(id, ".")
	if len(id) > 64 {
		id = id[:64]
	}
	name := fmt.Sprintf("%s-%s.wav", now.UTC().Format("20060102T150405.000Z"), id)
	return filepath.Join(c.e.cfg.RecordingsDir, name)
}
