package b2bua

import (
	"context"
	"errors"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Media puts a call's media through the PBX (package media implements it; pbx adapts it). Without
// it session descriptions pass through unchanged and media flows between the phones.
type Media interface {
	// NewSession allocates a call's media relay. An error with a *StatusError (503 when no port is
	// free) refuses the call with that status.
	NewSession() (MediaSession, error)
}

// MediaSession is one call's media relay.
type MediaSession interface {
	// Rewrite takes a session description the caller (fromCaller) or the callee sent and returns
	// the one the other side gets. An error with a *StatusError (400 malformed, 488 no allowed
	// codec) says how to refuse it.
	Rewrite(fromCaller bool, sdp []byte) ([]byte, error)
	// Idle is closed when media stopped flowing while the call was not on hold.
	Idle() <-chan struct{}
	// Stats returns what each side sent.
	Stats() (caller, callee MediaStats)
	// EarlyMedia prepares PBX audio for the caller: what is "tone" (ringback) or a WAV file. It
	// returns the SDP answer for a 183 (the PBX's address, the port that faces the caller for the
	// whole call) and a function that plays until its context ends.
	EarlyMedia(what string) (sdp []byte, play func(context.Context) error, err error)
	// OnDTMF sets the function told of each key either side presses (RFC 4733 events).
	OnDTMF(f func(fromCaller bool, digit string))
	// Close releases the relay; called once the call has ended.
	Close()
}

// MediaStats is what one side of a call sent through the relay, and what it said in RTCP of the
// audio it received.
type MediaStats struct {
	Packets, Bytes, Lost uint64
	JitterMS             float64
	RTCP                 uint64
	// From the side's latest RTCP reception report: packets lost (negative with duplicates),
	// jitter, and the round trip between the PBX and the side (0: unknown).
	ReportedLost     int64
	ReportedJitterMS float64
	RTTMS            float64
}

// sdpFrom rewrites a description from the caller (fromCaller) or the callee for the other side;
// without media relay, or for an empty body, it is returned as it is.
func (c *Call) sdpFrom(fromCaller bool, body []byte) ([]byte, error) {
	if c.media == nil || len(body) == 0 {
		return body, nil
	}
	return c.media.Rewrite(fromCaller, body)
}

// mediaStatus is the status that refuses a description the relay could not take.
func mediaStatus(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 500
}

// watchMedia hangs an answered call up when its media stops (Idle), until the call ends.
func (c *Call) watchMedia() {
	if c.media == nil {
		return
	}
	c.e.bg.Add(1)
	go func() {
		defer c.e.bg.Done()
		select {
		case <-c.media.Idle():
			c.log.Info("no media from either side: hanging up")
			c.hangup(true, true, "pbx", "media timeout")
		case <-c.done:
		}
	}()
}

// sdpIn rewrites the SDP body of an in-dialog request (re-INVITE, UPDATE) the caller (aleg) or
// the callee sent, for the other side; other bodies (INFO's DTMF, say) pass unchanged.
func (c *Call) sdpIn(req *sip.Request, aleg bool) ([]byte, error) {
	if !isSDP(req.ContentType()) {
		return req.Body(), nil
	}
	return c.sdpFrom(aleg, req.Body())
}

// sdpOut rewrites the SDP body of the other side's answer to a request from aleg.
func (c *Call) sdpOut(res *sip.Response, aleg bool) ([]byte, error) {
	if !isSDP(res.ContentType()) {
		return res.Body(), nil
	}
	return c.sdpFrom(!aleg, res.Body())
}

func isSDP(ct *sip.ContentTypeHeader) bool {
	return ct != nil && strings.EqualFold(strings.TrimSpace(strings.SplitN(ct.Value(), ";", 2)[0]), "application/sdp")
}

// MediaStats returns what each side has sent through the media relay so far, and false when the
// call has no relay.
func (c *Call) MediaStats() (caller, callee MediaStats, ok bool) {
	c.mu.Lock()
	m := c.media
	c.mu.Unlock()
	if m == nil {
		return MediaStats{}, MediaStats{}, false
	}
	caller, callee = m.Stats()
	return caller, callee, true
}

// ErrNoMedia is returned by PlayToCaller on a call without media relay.
var ErrNoMedia = errors.New("b2bua: the call has no media relay")

// PlayToCaller plays PBX audio to the caller while the call is not answered: what is "tone"
// (ringback) or the path of a WAV file (8 kHz mono, 16-bit PCM or G.711, looped). The first call
// sends 183 Session Progress with the PBX's SDP; it blocks until ctx ends, the caller hangs up or
// a callee answers (then the caller hears the callee through the same port, with no new SDP).
func (c *Call) PlayToCaller(ctx context.Context, what string) error {
	c.mu.Lock()
	m, early := c.media, c.earlyMedia
	c.mu.Unlock()
	if m == nil {
		return ErrNoMedia
	}
	if c.Decided() {
		return ErrDecided
	}
	sdp, play, err := m.EarlyMedia(what)
	if err != nil {
		return err
	}
	if !early {
		if _, err := c.e.respond(c.aReq, c.aTx, 183, c.a.localTag, sdp, c.contact); err != nil {
			return err
		}
		c.mu.Lock()
		c.earlyMedia = true
		c.mu.Unlock()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(c.ctx, cancel) // the caller's CANCEL, shutdown
	defer stop()
	c.mu.Lock()
	if c.answered || c.ended {
		c.mu.Unlock()
		return nil
	}
	c.stopEarly = append(c.stopEarly, cancel) // answer and finish stop the audio
	c.mu.Unlock()
	err = play(ctx)
	return err
}

// stopAudio stops PBX audio to the caller: a callee answered, or the call ended.
func (c *Call) stopAudio() {
	c.mu.Lock()
	stops := c.stopEarly
	c.stopEarly = nil
	c.mu.Unlock()
	for _, stop := range stops {
		stop()
	}
}
