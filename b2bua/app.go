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
// A caller that cancelled meanwhile makes it return ErrDecided. It may be called from any
// goroutine while the call is being set up (route need not call it itself).
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
// fails when Hangup gave up on the call meanwhile, or the caller cancelled (its INVITE got 487).
func (c *Call) answerItself(sdp []byte, app *callApp, detach func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.abort != "" || c.cancelled.fired() || !c.move(stateApplication) {
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
// callee to pass it to. It reports false for a request the bridged call handles as usual. t is
// the request's turn: done once the request is answered.
func (c *Call) appInDialog(req *sip.Request, tx sip.ServerTransaction, aleg bool, t *turn) bool {
	if !aleg || !c.InApplication() {
		return false
	}
	tag := c.localTag(true)
	switch req.Method {
	case sip.ACK, sip.BYE:
		return false
	case sip.INFO:
		digit, ok := infoDigit(req)
		switch {
		case !ok && isDTMFInfo(req):
			c.e.respond(req, tx, 400, tag, nil, sip.NewHeader("Warning", `399 pbxkit "no key in the DTMF body"`))
			return true
		case !ok && len(req.Body()) > 0:
			c.e.respond(req, tx, 415, tag, nil, sip.NewHeader("Accept", "application/dtmf-relay, application/dtmf"))
			return true
		}
		c.e.respond(req, tx, 200, tag, nil)
		if ok {
			c.keyPressed(true, digit, DTMFInfo)
		}
	case sip.INVITE, sip.UPDATE:
		c.appReoffer(req, tx, tag, t)
	case sip.OPTIONS:
		c.e.respond(req, tx, 200, tag, nil, sip.NewHeader("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE"))
	default:
		c.e.respond(req, tx, 501, tag, nil)
	}
	return true
}

// appReoffer answers a caller's re-INVITE or UPDATE while the PBX is its other end: a new offer
// is answered by the PBX again (appAnswerOffer: the relay learns the caller's new address, the
// PBX sends in the codec it answered), or refused 488 when it has no G.711; a re-INVITE without
// one gets the PBX's description as an offer (its ACK's answer is not needed: the PBX's media
// stays as it is), an UPDATE without one (a session refresh) a plain 200. The request's turn (t)
// is done once it is answered: the caller's ACK and next requests need not wait for it.
func (c *Call) appReoffer(req *sip.Request, tx sip.ServerTransaction, tag string, t *turn) {
	answer := c.appSDP()
	offered := isSDP(req.ContentType()) && len(req.Body()) > 0
	if req.Method == sip.UPDATE && !offered {
		answer = nil // a refresh without offer: no answer either
	}
	var gen uint64
	var acked <-chan struct{}
	c.mu.Lock()
	contact := c.a.contact
	if req.Method == sip.INVITE {
		if gen = c.re.begin(true, req.CSeq().SeqNo); gen == 0 {
			c.mu.Unlock()
			c.e.respond(req, tx, 491, tag, nil)
			return
		}
	}
	c.mu.Unlock()
	if offered {
		var err error
		if answer, err = c.appAnswerOffer(req.Body()); err != nil {
			c.log.Info("caller's new offer refused", "method", req.Method, "error", err)
			c.e.respond(req, tx, statusOf(err), tag, nil)
			c.endReinvite(gen)
			return
		}
	}
	answer = c.stampSDP(c.a, answer)
	if gen != 0 {
		c.mu.Lock()
		acked = c.re.answeredWith(req.CSeq().SeqNo)
		c.mu.Unlock()
	}
	ok, err := c.e.respond(req, tx, 200, tag, answer, contact)
	t.done() // answered: the ACK and the caller's next requests go on
	if err != nil || acked == nil {
		c.endReinvite(gen)
		return
	}
	c.retransmitUntil(tx, ok, acked)
	c.endReinvite(gen)
}

// endReinvite ends the caller's re-INVITE gen (0: none) answered by the PBX.
func (c *Call) endReinvite(gen uint64) {
	if gen == 0 {
		return
	}
	c.mu.Lock()
	c.re.end(gen)
	c.mu.Unlock()
}

// appAnswerOffer takes the caller's new offer while the PBX is its other end and returns the
// PBX's answer: the relay learns the offer, the PBX answers with the first G.711 codec offered,
// and sends in it from then on (the application is attached again when the codec changed). An
// offer without G.711 is refused (488) before the relay sees it, so the session stays as it was.
func (c *Call) appAnswerOffer(offer []byte) ([]byte, error) {
	m := c.mediaSession()
	if m == nil {
		return nil, ErrNoRelay
	}
	if !offersG711(offer) {
		return nil, &StatusError{Code: 488, Reason: "the PBX plays G.711 and the caller offered none"}
	}
	rewritten, err := c.sdpFrom(true, offer)
	if err != nil {
		return nil, err
	}
	answer, err := m.AppAnswer()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	old := c.media.appSDP
	c.media.offer, c.media.appSDP = rewritten, answer
	c.media.sdpA, c.media.sdpB = rewritten, answer
	c.mu.Unlock()
	if !sameCodec(old, answer) {
		c.reattach(m, answer)
	}
	return answer, nil
}

// reattach attaches the application to the caller again, sending in the codec of answer (the
// PBX's new answer to the caller). Nothing happens once the PBX stopped being the caller's end.
func (c *Call) reattach(m MediaSession, answer []byte) {
	c.mu.Lock()
	app, detach := c.media.app, c.media.detach
	c.mu.Unlock()
	if app == nil || detach == nil {
		return
	}
	detach()
	again, err := m.Attach(true, answer, app)
	if err != nil {
		c.log.Warn("application not attached again after the codec change", "error", err)
		return
	}
	c.mu.Lock()
	if c.media.app != app || c.state != stateApplication {
		c.mu.Unlock()
		again() // the application ended meanwhile
		return
	}
	c.media.detach = again
	c.mu.Unlock()
	c.log.Info("the caller changed codec: the pbx sends in the new one")
}

// offersG711 reports whether an offer's first audio section offers PCMU or PCMA.
func offersG711(offer []byte) bool {
	_, sections := splitSDP(offer)
	s, ok := firstAudio(sections)
	if !ok {
		return false
	}
	m, _ := s.mline()
	for _, f := range m.formats {
		if c := s.codec(f); c == "pcmu/8000" || c == "pcma/8000" {
			return true
		}
	}
	return false
}

// appSDP is the PBX's answer to the caller while it is its other end.
func (c *Call) appSDP() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.media.appSDP
}
