// Package callmedia adapts package media to the call core's view of it (b2bua.Media): one relay
// session per call, media's errors as SIP statuses. The PBX uses it, and so do the call core's
// tests that need real RTP.
package callmedia

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/media"
)

// New returns the call core's view of relay.
func New(relay *media.Relay) b2bua.Media { return relayAdapter{relay} }

// relayAdapter gives the call core media sessions, with media's errors as SIP statuses.
type relayAdapter struct{ r *media.Relay }

var _ b2bua.Media = relayAdapter{}

func (a relayAdapter) NewSession() (b2bua.MediaSession, error) {
	s, err := a.r.NewSession()
	if err != nil {
		return nil, Error(err)
	}
	return sessionAdapter{s}, nil
}

type sessionAdapter struct{ s *media.Session }

var (
	_ b2bua.MediaSession    = sessionAdapter{}
	_ b2bua.MediaRootWriter = sessionAdapter{}
)

func (a sessionAdapter) Rewrite(fromCaller bool, sdp []byte) ([]byte, error) {
	out, err := a.s.Rewrite(fromCaller, sdp)
	return out, Error(err)
}

func (a sessionAdapter) Idle() <-chan struct{}       { return a.s.Idle() }
func (a sessionAdapter) IdleSide() string            { return a.s.IdleSide() }
func (a sessionAdapter) OnDTMF(f func(bool, string)) { a.s.OnDTMF(f) }

func (a sessionAdapter) EarlyMedia(what b2bua.Audio) ([]byte, func(context.Context) error, error) {
	sdp, codec, err := a.s.EarlyAnswer()
	if err != nil {
		return nil, nil, Error(err)
	}
	var src media.Source
	if what.Music == "" || what.Music == "tone" {
		src = media.Ringback(codec)
	} else if src, err = media.LoadWAV(what.Music, codec, true); err != nil {
		return nil, nil, err
	}
	if what.Announcement != "" && what.Every > 0 {
		ann, err := media.LoadWAV(what.Announcement, codec, false)
		if err != nil {
			return nil, nil, err
		}
		src = media.WithAnnouncement(src, ann, what.Every)
	}
	return sdp, func(ctx context.Context) error { return a.s.Play(ctx, true, codec, src) }, nil
}

func (a sessionAdapter) Close() { a.s.Close() }

// StartRecording creates the recordings folder when it is missing and starts recording.
func (a sessionAdapter) StartRecording(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("pbx: recordings folder: %w", err)
	}
	return Error(a.s.StartRecording(path))
}

func (a sessionAdapter) StopRecording() (string, error) {
	path, err := a.s.StopRecording()
	return path, Error(err)
}

func (a sessionAdapter) PlayTo(ctx context.Context, toCaller bool, desc []byte, what string) error {
	codec, err := media.G711Of(desc)
	if err != nil {
		return Error(err)
	}
	var src media.Source
	if what == "" || what == "tone" {
		src = media.HoldTone(codec)
	} else if src, err = media.LoadWAV(what, codec, true); err != nil {
		return err
	}
	return a.s.Play(ctx, toCaller, codec, src)
}

func (a sessionAdapter) AppAnswer() ([]byte, error) {
	sdp, _, err := a.s.EarlyAnswer()
	return sdp, Error(err)
}

func (a sessionAdapter) Attach(toCaller bool, desc []byte, app b2bua.MediaApp) (func(), error) {
	codec, err := media.G711Of(desc)
	if err != nil {
		return nil, Error(err)
	}
	return a.s.Attach(toCaller, codec, app)
}

func (a sessionAdapter) Sound(what string) (b2bua.Frames, error) { return media.Sound(what) }

func (a sessionAdapter) WriteWAV(path string, pcm []int16) error { return WriteWAVFile(path, pcm) }

// WriteWAVFile writes pcm (8 kHz mono) to a new 16-bit WAV file at path, through a temporary file
// renamed into place, so a reader never sees half a recording.
func WriteWAVFile(path string, pcm []int16) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".rec-*.wav")
	if err != nil {
		return fmt.Errorf("media: %w", err)
	}
	err = media.WriteWAV(f, pcm)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

func (a sessionAdapter) WriteWAVIn(root *os.Root, name string, pcm []int16) error {
	return WriteWAVIn(root, name, pcm)
}

// WriteWAVIn writes pcm (8 kHz mono) to a new 16-bit WAV file name inside root: a temporary file
// created through root is linked to name, so a reader never sees half a recording, no symbolic
// link or ".." leads out of root, and an existing file is not replaced (an error wrapping
// fs.ErrExist). On a file system without hard links name is created exclusively first and the
// temporary file renamed over it.
func WriteWAVIn(root *os.Root, name string, pcm []int16) error {
	tmp := filepath.Join(filepath.Dir(name), fmt.Sprintf(".rec-%016x.wav", rand.Uint64()))
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("media: %w", err)
	}
	defer root.Remove(tmp)
	err = media.WriteWAV(f, pcm)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("media: %w", err)
	}
	err = root.Link(tmp, name)
	if err == nil || errors.Is(err, fs.ErrExist) {
		return existing(name, err)
	}
	// No hard links here: claim the name, then replace the empty claim.
	claim, cerr := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if cerr != nil {
		return existing(name, cerr)
	}
	claim.Close()
	if err := root.Rename(tmp, name); err != nil {
		root.Remove(name)
		return fmt.Errorf("media: %w", err)
	}
	return nil
}

// existing says that a recording was not written because name exists.
func existing(name string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("media: %s exists: a recording does not replace a file: %w", name, fs.ErrExist)
	}
	return fmt.Errorf("media: %w", err)
}

func (a sessionAdapter) Stats() (caller, callee b2bua.MediaStats) {
	ca, cb := a.s.Stats()
	return stats(ca), stats(cb)
}

func stats(s media.Stats) b2bua.MediaStats {
	return b2bua.MediaStats{Packets: s.Packets, Bytes: s.Bytes, Lost: s.Lost, JitterMS: s.Jitter, RTCP: s.RTCP,
		ReportedLost: s.Report.Lost, ReportedJitterMS: s.Report.Jitter, RTTMS: float64(s.Report.RTT) / float64(time.Millisecond)}
}

// Error maps media's errors to the status that refuses the call or request, and the recorder's to
// the call core's.
func Error(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, media.ErrNoPorts):
		return &b2bua.StatusError{Code: 503, Reason: err.Error()}
	case errors.Is(err, media.ErrMalformedSDP):
		return &b2bua.StatusError{Code: 400, Reason: err.Error()}
	case errors.Is(err, media.ErrNoCodec):
		return &b2bua.StatusError{Code: 488, Reason: err.Error()}
	case errors.Is(err, media.ErrRecording):
		return fmt.Errorf("%w: %w", b2bua.ErrRecording, err)
	case errors.Is(err, media.ErrNotRecording):
		return fmt.Errorf("%w: %w", b2bua.ErrNotRecording, err)
	case errors.Is(err, media.ErrUndecodable):
		return fmt.Errorf("%w: %w", b2bua.ErrUndecodable, err)
	}
	return err
}
