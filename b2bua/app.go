package b2bua

import (
	"context"
	"errors"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Applications: the PBX answers the caller itself (Answer) and is its other end, through the
// media relay's port facing the caller (MediaSession.Attach): it plays sounds (Play), collects
// key presses from RFC 4733 events and SIP INFO (Gather) and records the caller (Record). The
// call is then in the application state; Connect bridges a callee in through the same port, and
// the end of routing (or Hangup) hangs the caller up. app*.go hold the pieces.

// ErrNoRelay is returned by the application verbs on a call without media relay: the PBX has no
// media of its own to answer with.
var ErrNoRelay = errors.New("b2bua: the PBX answers calls itself only with the media relay (Config.Media)")

// ErrNotAnswered is returned by Play, Gather and Record before Answer (or once a callee is
// bridged in): the PBX is not the caller's other end.
var ErrNotAnswered = errors.New("b2bua: the PBX is not the caller's other end: Answer first")

// PBXParty names the PBX as the callee of a call it answered itself, in the record.
const PBXParty = "pbx"

// Answer answers the caller with 200 and the PBX's own media: the relay's port facing the caller,
// the first G.711 codec of the caller's offer (and telephone-event if offered). It returns once
// the caller acknowledged. The call counts as answered from now on (its record's Answer time;
// the callee is PBXParty until Connect bridges one in). Without a media relay it returns
// ErrNoRelay and the caller still waits; on a call already answered by the PBX it does nothing.
func (c *Call) Answer(ctx context.Context) error {
	m := c.mediaSession()
	if m == nil {
		return ErrNoRelay
	}
	c.mu.Lock()
	state := c.state
	c.mu.Unlock()
	switch {
	case state == stateApplication:
		return nil
	case state != stateSetup:
		return ErrDecided
	case ctx.Err() != nil:
		return ctx.Err()
	}
	sdp, err := m.AppAnswer()
	if err != nil {
		return err
	}
	c.stopAudio() // early media, if any, ends: the application takes the port over
	app := newCallApp()
	detach, err := m.Attach(true, sdp, app)
	if err != nil {
		return err
	}
	if !c.answerItself(sdp, app, detach) {
		detach()
		return ErrDecided
	}
	c.emit(CallAnswered, 200)
	c.e.table.add(c.a.key(), c, true)
	c.log.Info("call answered by the pbx")
	if acked, _ := c.answerCaller(sdp, nil); !acked {
		return errors.New("b2bua: the caller did not acknowledge the answer")
	}
	return nil
}

// answerItself moves the call to the application state with app as the caller's other end. It
// fails when Hangup gave up on the call meanwhile.
func (c *Call) answerItself(sdp []byte, app *callApp, detach func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.abort != "" || !c.move(stateApplication) {
		return false
	}
	now := time.Now()
	c.rec.Answer, c.rec.Callee = now, PBXParty
	c.seg = segment{caller: c.rec.Caller, callee: PBXParty, start: now}
	c.media.app, c.media.detach, c.media.appSDP = app, detach, sdp
	c.media.sdpA, c.media.sdpB = c.media.offer, sdp
	return true
}

// application returns the caller's application end while the PBX is it, else nil.
func (c *Call) application() *callApp {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateApplication {
		return nil
	}
	return c.media.app
}

// InApplication reports whether the PBX answered the call itself and no callee is bridged in.
func (c *Call) InApplication() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state == stateApplication
}

// leaveApplication detaches the PBX from the caller's side (a callee is bridged in, or the call
// ended): relaying goes on through the same port.
func (c *Call) leaveApplication() {
	c.mu.Lock()
	detach, app := c.media.detach, c.media.app
	c.media.detach, c.media.app = nil, nil
	c.mu.Unlock()
	if app != nil {
		app.stop()
	}
	if detach != nil {
		detach()
	}
}

// appInDialog handles a request from the caller while the PBX is its other end: there is no
// callee to pass it to. It reports false for a request the bridged call handles as usual.
func (c *Call) appInDialog(req *sip.Request, tx sip.ServerTransaction, aleg bool) bool {
	if !aleg || !c.InApplication() {
		return false
	}
	tag := c.localTag(true)
	switch req.Method {
	case sip.ACK, sip.BYE:
		return false
	case sip.INFO:
		digit, ok := infoDigit(req)
		if !ok && len(req.Body()) > 0 {
			c.e.respond(req, tx, 415, tag, nil, sip.NewHeader("Accept", "application/dtmf-relay, application/dtmf"))
			return true
		}
		c.e.respond(req, tx, 200, tag, nil)
		if ok {
			c.keyPressed(true, digit, DTMFInfo)
		}
	case sip.INVITE, sip.UPDATE:
		c.appReoffer(req, tx, tag)
	case sip.OPTIONS:
		c.e.respond(req, tx, 200, tag, nil, sip.NewHeader("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE"))
	default:
		c.e.respond(req, tx, 501, tag, nil)
	}
	return true
}

// appReoffer answers a caller's re-INVITE or UPDATE while the PBX is its other end: a new offer
// is answered by the PBX again (the relay learns the caller's new address); a re-INVITE without
// one gets the PBX's description as an offer (its ACK's answer is not needed: the PBX's media
// stays as it is), an UPDATE without one (a session refresh) a plain 200.
func (c *Call) appReoffer(req *sip.Request, tx sip.ServerTransaction, tag string) {
	answer := c.appSDP()
	offered := isSDP(req.ContentType()) && len(req.Body()) > 0
	if req.Method == sip.UPDATE && !offered {
		answer = nil // a refresh without offer: no answer either
	}
	if offered {
		if _, err := c.sdpFrom(true, req.Body()); err != nil {
			c.e.respond(req, tx, statusOf(err), tag, nil)
			return
		}
		if m := c.mediaSession(); m != nil {
			if sdp, err := m.AppAnswer(); err == nil {
				answer = sdp
			}
		}
	}
	answer = c.stampSDP(c.a, answer)
	var gen uint64
	var acked <-chan struct{}
	c.mu.Lock()
	contact := c.a.contact
	if req.Method == sip.INVITE {
		if gen = c.re.begin(true, req.CSeq().SeqNo); gen != 0 {
			acked = c.re.answeredWith(req.CSeq().SeqNo)
		}
	}
	c.mu.Unlock()
	if req.Method == sip.INVITE && gen == 0 {
		c.e.respond(req, tx, 491, tag, nil)
		return
	}
	ok, err := c.e.respond(req, tx, 200, tag, answer, contact)
	if err != nil || acked == nil {
		return
	}
	c.retransmitUntil(tx, ok, acked)
	c.mu.Lock()
	c.re.end(gen)
	c.mu.Unlock()
}

// appSDP is the PBX's answer to the caller while it is its other end.
func (c *Call) appSDP() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.media.appSDP
}
