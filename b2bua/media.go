package b2bua

import (
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
	// OnDTMF sets the function told of each key either side presses (RFC 4733 events).
	OnDTMF(f func(fromCaller bool, digit string))
	// Close releases the relay; called once the call has ended.
	Close()
}

// MediaStats is what one side of a call sent through the relay.
type MediaStats struct {
	Packets, Bytes, Lost uint64
	JitterMS             float64
	RTCP                 uint64
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
