package b2bua

import (
	"context"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/internal/sipx"
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
	// Idle is closed when one side sent no media for the media timeout while it was expected to
	// (the call not on hold); IdleSide then names that side. A description that arrives afterwards
	// arms a new channel, which Idle returns from then on.
	Idle() <-chan struct{}
	// IdleSide says who fell silent once Idle is closed: "caller", "callee" or "both".
	IdleSide() string
	// Stats returns what each side sent.
	Stats() (caller, callee MediaStats)
	// EarlyMedia prepares PBX audio for the caller. It returns the SDP answer for a 183 (the
	// PBX's address, the port that faces the caller for the whole call) and a function that
	// plays until its context ends.
	EarlyMedia(a Audio) (sdp []byte, play func(context.Context) error, err error)
	// PlayTo plays PBX audio to the caller (toCaller) or the callee from the relay's port facing
	// it, until ctx ends: what is "tone" (a soft hold tone) or a WAV file, in a G.711 codec of
	// desc, that side's latest description. The other side's media toward it is dropped meanwhile.
	PlayTo(ctx context.Context, toCaller bool, desc []byte, what string) error
	// OnDTMF sets the function told of each key either side presses (RFC 4733 events).
	OnDTMF(f func(fromCaller bool, digit string))
	// AppAnswer answers the caller's offer with the PBX itself as the other end (Call.Answer):
	// the PBX's address, the port facing the caller for the whole call (a callee connected later
	// is relayed through it), the first G.711 codec offered and telephone-event if offered.
	AppAnswer() ([]byte, error)
	// Attach makes app the caller's (toCaller) or the callee's other end until detach is called
	// or the session closes: that side's audio goes to app, decoded, not to the other side, and
	// app's frames go to it in the G.711 codec of desc (its latest description, or the PBX's
	// answer to it), paced at 20 ms, from the port facing it. Meanwhile PlayTo to that side fails.
	Attach(toCaller bool, desc []byte, app MediaApp) (detach func(), err error)
	// Sound loads what the PBX plays: "tone:ringback", "tone:busy", "tone:beep" (one cadence
	// each) or the path of a WAV file (8 kHz mono, 16-bit PCM or G.711).
	Sound(what string) (Frames, error)
	// WriteWAV writes pcm (8 kHz mono) to a 16-bit PCM WAV file at path.
	WriteWAV(path string, pcm []int16) error
	// StartRecording records both sides into a new stereo WAV file at path (caller left, callee
	// right) until StopRecording or Close. An error wrapping ErrRecording when it records
	// already, ErrUndecodable when the call's codec cannot be decoded.
	StartRecording(path string) error
	// StopRecording ends the recording and completes the file; it returns the file's path, or an
	// error wrapping ErrNotRecording.
	StopRecording() (path string, err error)
	// Close releases the relay; called once the call has ended.
	Close()
}

// MediaApp is the PBX's own end of one side of a call (media.App): an IVR, a recorder, a
// conference's mixer.
type MediaApp interface {
	// Receive takes the audio of one packet the side sent, as 16-bit PCM at 8 kHz. It runs on the
	// relay's goroutine: it must not block nor keep pcm.
	Receive(pcm []int16)
	// Send fills dst (160 samples, zeroed) with the next 20 ms sent to the side; it is called
	// every 20 ms.
	Send(dst []int16)
}

// Frames is a sound the PBX plays, 20 ms at a time (media.Samples).
type Frames interface {
	// Samples fills dst (160 samples at 8 kHz) with the next frame and reports false at the end.
	Samples(dst []int16) bool
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

// callMedia is a call's media: the relay session (nil without relay) and the latest session
// description of each side. Guarded by the call's mu.
type callMedia struct {
	session    MediaSession
	offer      []byte               // the caller's offer as the callees see it
	ackBody    []byte               // the body of the caller's ACK of our 2xx (a late offer's answer)
	early      bool                 // the caller got the PBX's own 183 with SDP
	stopEarly  []context.CancelFunc // stop PBX audio playing to the caller
	sdpA, sdpB []byte               // the latest description of each side, as it sent it
	app        *callApp             // the PBX is the caller's other end (app.go), nil otherwise
	detach     func()               // detaches app from the relay
	appSDP     []byte               // the PBX's answer to the caller (Answer)
	onKey      func(side, digit string)
}

// setSDP records a completed offer/answer: from the caller (aleg) or the callee.
func (m *callMedia) setSDP(aleg bool, offer, answer []byte) {
	if aleg {
		m.sdpA, m.sdpB = offer, answer
	} else {
		m.sdpB, m.sdpA = offer, answer
	}
}

// startMedia allocates the call's relay and rewrites the caller's offer; a call it cannot relay
// is refused (503 no port, 400 malformed SDP, 488 no allowed codec).
func (c *Call) startMedia() bool {
	m, err := c.e.cfg.Media.NewSession()
	if err != nil {
		code := statusOf(err)
		c.log.Warn("no media relay for the call", "status", code, "error", err)
		c.fail(code, "pbx", "media: "+err.Error(), sip.NewHeader("Retry-After", "5"))
		return false
	}
	c.mu.Lock()
	c.media.session = m
	c.mu.Unlock()
	m.OnDTMF(func(fromCaller bool, digit string) { c.keyPressed(fromCaller, digit, DTMFRFC4733) })
	offer, err := c.sdpFrom(true, c.aReq.Body())
	if code := statusOf(err); err != nil && code == 488 {
		// No allowed codec: routing still runs, and every attempt to connect comes to 488, so a
		// dialplan can answer 606 instead (or route to something that needs no media).
		c.log.Info("caller's offer has no allowed codec", "error", err)
		c.mu.Lock()
		c.setup.refusal = &ringResult{status: 488, by: "pbx", reason: "media: " + err.Error()}
		c.setup.last = c.setup.refusal
		c.mu.Unlock()
		return true
	} else if err != nil {
		c.log.Info("caller's offer refused", "status", code, "error", err)
		c.fail(code, "pbx", "media: "+err.Error())
		return false
	}
	c.mu.Lock()
	c.media.offer = offer
	c.mu.Unlock()
	return true
}

// mediaSession returns the call's media session, nil without relay.
func (c *Call) mediaSession() MediaSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.media.session
}

// sdpFrom rewrites a description from the caller (fromCaller) or the callee for the other side;
// without media relay, or for an empty body, it is returned as it is.
func (c *Call) sdpFrom(fromCaller bool, body []byte) ([]byte, error) {
	m := c.mediaSession()
	if m == nil || len(body) == 0 {
		return body, nil
	}
	return m.Rewrite(fromCaller, body)
}

// watchMedia hangs an answered call up when one side's media stops (Idle), until the call ends;
// the record's reason names the side ("media timeout: callee silent").
func (c *Call) watchMedia() {
	m := c.mediaSession()
	if m == nil {
		return
	}
	c.e.bg.Add(1)
	go func() {
		defer c.e.bg.Done()
		select {
		case <-m.Idle():
			who := m.IdleSide()
			c.log.Info("no media: hanging up", "silent", who)
			c.hangup(true, true, "pbx", "media timeout: "+who+" silent")
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

func isSDP(ct *sip.ContentTypeHeader) bool { return ct != nil && sipx.IsSDP(ct.Value()) }

// MediaStats returns what each side has sent through the media relay so far, and false when the
// call has no relay.
func (c *Call) MediaStats() (caller, callee MediaStats, ok bool) {
	m := c.mediaSession()
	if m == nil {
		return MediaStats{}, MediaStats{}, false
	}
	caller, callee = m.Stats()
	return caller, callee, true
}

// Audio is what the PBX plays to a caller who waits: Music over and over, "tone" (ringback) or
// the path of a WAV file (8 kHz mono, 16-bit PCM or G.711), and, when set, the WAV file
// Announcement once every Every of music in its place ("all our agents are busy").
type Audio struct {
	Music        string
	Announcement string
	Every        time.Duration
}

// PlayToCaller plays PBX audio to the caller while the call is not answered: what is "tone"
// (ringback) or the path of a WAV file (8 kHz mono, 16-bit PCM or G.711, looped). The first call
// sends 183 Session Progress with the PBX's SDP; it blocks until ctx ends, the caller hangs up or
// a callee answers (then the caller hears the callee through the same port, with no new SDP).
func (c *Call) PlayToCaller(ctx context.Context, what string) error {
	return c.PlayAudioToCaller(ctx, Audio{Music: what})
}

// PlayAudioToCaller is PlayToCaller with music and a repeated announcement (Audio).
func (c *Call) PlayAudioToCaller(ctx context.Context, what Audio) error {
	m := c.mediaSession()
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
	if err := c.earlyAnswer(sdp); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(c.ctx, cancel) // the caller's CANCEL, shutdown
	defer stop()
	c.mu.Lock()
	if c.state != stateSetup {
		c.mu.Unlock()
		return nil
	}
	c.media.stopEarly = append(c.media.stopEarly, cancel) // answer and finish stop the audio
	c.mu.Unlock()
	return play(ctx)
}

// earlyAnswer sends the caller the PBX's 183 with sdp, once.
func (c *Call) earlyAnswer(sdp []byte) error {
	c.mu.Lock()
	early := c.media.early
	c.mu.Unlock()
	if early {
		return nil
	}
	if _, err := c.e.respond(c.aReq, c.serverTx(), 183, c.a.localTag, c.stampSDP(c.a, sdp), c.a.contact); err != nil {
		return err
	}
	c.mu.Lock()
	c.media.early = true
	c.mu.Unlock()
	return nil
}

// stopAudio stops PBX audio to the caller: a callee answered, or the call ended.
func (c *Call) stopAudio() {
	c.mu.Lock()
	stops := c.media.stopEarly
	c.media.stopEarly = nil
	c.mu.Unlock()
	for _, stop := range stops {
		stop()
	}
}
