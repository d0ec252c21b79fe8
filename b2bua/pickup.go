package b2bua

import (
	"context"
	"slices"
	"time"
)

// Call pickup: a phone answers, in place of the phones that ring, a call still being set up. The
// picker's own call (its INVITE to **101, *8, or with Replaces naming a ringing B-leg) is not
// routed anywhere: its dialog becomes the callee's side of the call it picks up, and it ends
// without a record of its own (absorb), as an INVITE with Replaces does.
//
// The work is done on the picked call's own goroutine, the one waiting in ring: the picker hands
// it a request, ring stops (its legs are cancelled) and Dial answers the caller with the picker as
// the callee, exactly where a callee's 2xx would have been taken. So a pickup and a callee's
// answer cannot both win: whichever ring sees first wins, and the other is refused (a late 2xx is
// ACKed and hung up as with forking).

// pickupReq is a picker's request to a ringing call.
type pickupReq struct {
	by    *Call            // the picker's call
	ext   string           // the extension whose ringing is answered
	reply chan pickupReply // answered once, by the picked call's goroutine
}

// pickupReply tells the picker how its pickup went: on success the answer for its 200 and the
// signal its ACK fires.
type pickupReply struct {
	status int
	reason string
	answer []byte          // the SDP answer to the picker's offer, stamped for its dialog
	target *Call           // the call picked up
	acked  <-chan struct{} // closed by the picker's ACK
}

// pickedUp is a ring that ends in a pickup: the request and the two answers prepared.
type pickedUp struct {
	req                *pickupReq
	toCaller, toPicker []byte // answers to the caller's and the picker's offers
	pickerSDP          []byte // the picker's offer as the caller's side sees it
}

// ringingLeg reports whether the call is being set up and a leg of its current ring, for which
// match holds, rings at an extension; it returns the leg's extension.
func (c *Call) ringingLeg(match func(l *leg) bool) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateSetup || c.abort != "" || c.setup.ring == nil {
		return "", false
	}
	for _, l := range c.setup.legs {
		if l.ext != "" && !l.failed.Load() && !closed(l.decided) && match(l) {
			return l.ext, true
		}
	}
	return "", false
}

// closed reports whether ch is closed.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// ringingAt finds the call ringing longest at one of exts, other than self.
func (e *Engine) ringingAt(exts []string, self *Call) (*Call, string) {
	var best *Call
	var bestExt string
	for _, c := range e.liveCalls() {
		if c == self {
			continue
		}
		ext, ok := c.ringingLeg(func(l *leg) bool { return slices.Contains(exts, l.ext) })
		if ok && (best == nil || c.rec.Start.Before(best.rec.Start)) {
			best, bestExt = c, ext
		}
	}
	return best, bestExt
}

// Pickup answers the call ringing at extension ext (directed pickup) with this call's caller,
// the picker: the ringing phones get CANCEL, the picked call's caller and the picker get 200
// with answers made from each other's offers (docs/architecture.md, "Pickup and park"), and the
// two talk in the picked call, whose record names the picker as the callee. This call ends
// without a record of its own. When nothing rings at ext the Result's status is 480 (and it is
// the caller's answer should routing end there). A call ringing at ext on another node
// (Config.Cluster) is picked up there: this call dials that node and relays.
func (c *Call) Pickup(ctx context.Context, ext string) (Result, error) {
	return c.PickupAny(ctx, []string{ext})
}

// PickupAny is Pickup for the call that has rung longest at any of exts (group pickup).
func (c *Call) PickupAny(ctx context.Context, exts []string) (Result, error) {
	if c.Decided() {
		return c.endedResult(), ErrDecided
	}
	target, ext := c.e.ringingAt(exts, c)
	if target == nil {
		what := "nothing is ringing at " + exts[0]
		if len(exts) != 1 {
			what = "nothing is ringing in the pickup group"
		}
		return c.dialElsewhere(ctx, func(cl Cluster) (Target, bool, error) { return cl.RingingElsewhere(ctx, exts) }, 480, what)
	}
	return c.pickFrom(ctx, target, ext), nil
}

// attemptFailed keeps a failed pickup or retrieval as the caller's answer should routing end there.
func (c *Call) attemptFailed(status int, reason string) Result {
	c.log.Info("pickup failed", "status", status, "reason", reason)
	c.remember(ringResult{status: status, by: "pbx", reason: reason})
	return Result{Status: status, Reason: reason}
}

// pickFrom hands the pickup to the target's ring and, once taken, answers the picker.
func (c *Call) pickFrom(ctx context.Context, target *Call, ext string) Result {
	if len(c.aReq.Body()) == 0 {
		return c.attemptFailed(488, "pickup needs an SDP offer in the INVITE")
	}
	target.mu.Lock()
	r := target.setup.ring
	target.mu.Unlock()
	if r == nil {
		return c.attemptFailed(480, "nothing is ringing at "+ext)
	}
	req := &pickupReq{by: c, ext: ext, reply: make(chan pickupReply, 1)}
	select {
	case r.pickups <- req:
	case <-r.decided:
		return c.attemptFailed(480, "the call at "+ext+" stopped ringing")
	case <-ctx.Done():
		return Result{Status: 487, Reason: "routing gave up: " + ctx.Err().Error()}
	}
	rep := <-req.reply // the target answers every request it took, at once
	if rep.status != 200 {
		return c.attemptFailed(rep.status, rep.reason)
	}
	c.log.Info("call picked up", "picked_call_id", target.id, "ext", ext)
	c.absorb()
	ok, err := c.e.respond(c.aReq, c.aTx, 200, c.a.localTag, rep.answer, c.a.contact)
	if err != nil {
		target.Hangup("could not answer the picker")
	} else if !target.retransmitUntil(c.aTx, ok, rep.acked) && !closed(target.done) {
		target.log.Warn("picker never acknowledged the 200: hanging up")
		target.Hangup("no ACK from the picker")
	}
	return Result{Answered: true, Status: 200, Reason: "picked up"}
}

// onPickup takes a picker's request in the ring: it prepares both answers and stops the legs, or
// refuses the request (the ring goes on).
func (r *ringer) onPickup(req *pickupReq) (ringResult, bool) {
	c := r.c
	p, err := c.pickupMedia(req.by)
	if err != nil {
		code := statusOf(err)
		c.log.Info("pickup refused", "status", code, "error", err)
		req.reply <- pickupReply{status: code, reason: "media: " + err.Error()}
		return ringResult{}, false
	}
	p.req = req
	r.stop(nil)
	return ringResult{status: 200, pickup: p}, true
}

// pickupMedia prepares the answers to the caller's and the picker's offers.
func (c *Call) pickupMedia(by *Call) (*pickedUp, error) {
	pickerOffer := by.aReq.Body()
	pickerSDP, err := c.sdpFrom(false, pickerOffer) // the picker takes the callee's side
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	callerSDP := c.media.offer // the caller's offer as the callee's side sees it
	c.mu.Unlock()
	toCaller, err := answerFrom(c.aReq.Body(), pickerSDP)
	if err != nil {
		return nil, err
	}
	toPicker, err := answerFrom(pickerOffer, callerSDP)
	if err != nil {
		return nil, err
	}
	return &pickedUp{toCaller: toCaller, toPicker: toPicker, pickerSDP: pickerSDP}, nil
}

// answerPickup connects the caller to the picker: the picker's dialog becomes the callee's side,
// the picker is told to send its 200, and the caller gets its own and is waited for as answer
// does. It reports false when the call ended meanwhile (the picker then gets 480).
func (c *Call) answerPickup(p *pickedUp) bool {
	by := p.req.by
	party := by.party()
	l := &leg{c: c, ext: party, d: *by.a}
	ack := newSignal()
	c.mu.Lock()
	if c.abort != "" || !c.move(stateAnswered) {
		c.mu.Unlock()
		p.req.reply <- pickupReply{status: 480, reason: "the call ended before it was picked up"}
		return false
	}
	now := time.Now()
	c.winner = l
	c.rec.Answer, c.rec.Callee = now, party
	c.seg = segment{caller: c.rec.Caller, callee: party, start: now}
	c.media.sdpA, c.media.sdpB = c.media.offer, p.pickerSDP
	c.setup.pickerAck = &ack
	toPicker := l.d.origin.stamp(p.toPicker)
	c.mu.Unlock()
	c.stopAudio()
	c.emit(CallAnswered, 200)
	c.e.table.add(l.d.key(), c, false)
	c.e.table.add(c.a.key(), c, true)
	c.log.Info("call picked up", "by", party, "ext", p.req.ext, "picker_call_id", by.id)
	c.recordOnAnswer()
	p.req.reply <- pickupReply{status: 200, answer: toPicker, target: c, acked: ack.ch}
	c.answerCaller(p.toCaller, nil)
	return true
}

// pickerAcked fires the picker's ACK signal, if a pickup waits for it.
func (c *Call) pickerAcked() {
	c.mu.Lock()
	s := c.setup.pickerAck
	c.mu.Unlock()
	if s != nil {
		s.fire()
	}
}

// party names the caller of a call as a party of another: its extension, or its From user.
func (c *Call) party() string {
	if c.user != "" {
		return c.user
	}
	return c.rec.Caller
}

// earlyLeg finds the ringing B-leg an INVITE with Replaces names (RFC 3891 §3 with early-only, as
// a phone's busy lamp key picks a call up, having learnt the dialog from RFC 4235 NOTIFYs): the
// leg's Call-ID, with the PBX's tag as either tag (phones disagree on which end is "to").
func (e *Engine) earlyLeg(r replacesID) (*Call, string, bool) {
	for _, c := range e.liveCalls() {
		ext, ok := c.ringingLeg(func(l *leg) bool {
			return l.d.callID == r.callID && (l.d.localTag == r.toTag || l.d.localTag == r.fromTag)
		})
		if ok {
			return c, ext, true
		}
	}
	return nil, "", false
}

// pickupByReplaces answers an INVITE with Replaces naming a ringing B-leg: the call of that leg
// is picked up by this call's caller, or this caller is refused with the reason.
func (c *Call) pickupByReplaces(target *Call, ext string) {
	if r := c.pickFrom(c.ctx, target, ext); !r.Answered {
		c.fail(r.Status, "pbx", r.Reason)
	}
}
