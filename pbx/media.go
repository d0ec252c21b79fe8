package pbx

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/media"
)

// mediaRelay is the call core's view of the media relay, or nil without one.
func (p *PBX) mediaRelay() b2bua.Media {
	if p.relay == nil {
		return nil
	}
	return relayAdapter{p.relay}
}

// MediaPorts returns how many RTP port pairs of the relay are free and in use (0, 0 without a
// relay).
func (p *PBX) MediaPorts() (free, inUse int) {
	if p.relay == nil {
		return 0, 0
	}
	return p.relay.Ports().Free(), p.relay.Ports().InUse()
}

// relayAdapter gives the call core media sessions, with media's errors as SIP statuses.
type relayAdapter struct{ r *media.Relay }

func (a relayAdapter) NewSession() (b2bua.MediaSession, error) {
	s, err := a.r.NewSession()
	if err != nil {
		return nil, mediaError(err)
	}
	return sessionAdapter{s}, nil
}

type sessionAdapter struct{ s *media.Session }

func (a sessionAdapter) Rewrite(fromCaller bool, sdp []byte) ([]byte, error) {
	out, err := a.s.Rewrite(fromCaller, sdp)
	return out, mediaError(err)
}

func (a sessionAdapter) Idle() <-chan struct{}       { return a.s.Idle() }
func (a sessionAdapter) IdleSide() string            { return a.s.IdleSide() }
func (a sessionAdapter) OnDTMF(f func(bool, string)) { a.s.OnDTMF(f) }

func (a sessionAdapter) EarlyMedia(what b2bua.Audio) ([]byte, func(context.Context) error, error) {
	sdp, codec, err := a.s.EarlyAnswer()
	if err != nil {
		return nil, nil, mediaError(err)
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
	return mediaError(a.s.StartRecording(path))
}

func (a sessionAdapter) StopRecording() (string, error) {
	path, err := a.s.StopRecording()
	return path, mediaError(err)
}

func (a sessionAdapter) PlayTo(ctx context.Context, toCaller bool, desc []byte, what string) error {
	codec, err := media.G711Of(desc)
	if err != nil {
		return mediaError(err)
	}
	var src media.Source
	if what == "" || what == "tone" {
		src = media.HoldTone(codec)
	} else if src, err = media.LoadWAV(what, codec, true); err != nil {
		return err
	}
	return a.s.Play(ctx, toCaller, codec, src)
}

func (a sessionAdapter) Stats() (caller, callee b2bua.MediaStats) {
	ca, cb := a.s.Stats()
	return mediaStats(ca), mediaStats(cb)
}

func mediaStats(s media.Stats) b2bua.MediaStats {
	return b2bua.MediaStats{Packets: s.Packets, Bytes: s.Bytes, Lost: s.Lost, JitterMS: s.Jitter, RTCP: s.RTCP,
		ReportedLost: s.Report.Lost, ReportedJitterMS: s.Report.Jitter, RTTMS: float64(s.Report.RTT) / float64(time.Millisecond)}
}

// mediaError maps media's errors to the status that refuses the call or request.
func mediaError(err error) error {
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
