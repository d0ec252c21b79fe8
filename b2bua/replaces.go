package b2bua

import (
	"net/url"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Attended transfer and INVITE with Replaces (RFC 3891): a new dialog takes the place of one of
// a call's dialogs. The PBX holds both dialogs of every call, so it carries the replacement out
// itself: the party of the new dialog is connected to the peer of the replaced one, through the
// call's relay, and the replaced party is released.

// replacesID names the dialog a Replaces header replaces: its Call-ID and tags, the to-tag being
// the tag of the dialog's party that receives the Replaces (here, the PBX's).
type replacesID struct {
	callID, toTag, fromTag string
	earlyOnly              bool
}

// parseReplaces reads a Replaces header value (RFC 3891 §6.1).
func parseReplaces(v string) (replacesID, bool) {
	parts := strings.Split(v, ";")
	r := replacesID{callID: strings.TrimSpace(parts[0])}
	for _, p := range parts[1:] {
		name, value, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch strings.ToLower(name) {
		case "to-tag":
			r.toTag = value
		case "from-tag":
			r.fromTag = value
		case "early-only":
			r.earlyOnly = true
		}
	}
	return r, r.callID != "" && r.toTag != "" && r.fromTag != ""
}

// replacesOf reads the Replaces a Refer-To URI carries as a header (RFC 3891 §6.1, RFC 3515
// §2.1: the transferor asks the transferee to send INVITE with Replaces).
func replacesOf(uri sip.Uri) (replacesID, bool) {
	if uri.Headers == nil {
		return replacesID{}, false
	}
	for _, kv := range uri.Headers {
		if !strings.EqualFold(kv.K, "Replaces") {
			continue
		}
		v, err := url.PathUnescape(kv.V)
		if err != nil {
			return replacesID{}, false
		}
		return parseReplaces(v)
	}
	return replacesID{}, false
}

// findDialog finds the call dialog a Replaces names. The tags are tried both ways round: a
// Replaces built by a transferor names the dialog from its own end, and phones disagree on which
// end is "to".
func (e *Engine) findDialog(r replacesID) (dialogRef, bool) {
	if ref, ok := e.table.lookup(dialogKey(r.callID, r.toTag, r.fromTag)); ok {
		return ref, true
	}
	return e.table.lookup(dialogKey(r.callID, r.fromTag, r.toTag))
}

// endedDialog reports whether a Replaces names a dialog that ended a moment ago.
func (e *Engine) endedDialog(r replacesID) bool {
	now := time.Now()
	return e.table.ended(dialogKey(r.callID, r.toTag, r.fromTag), now) || e.table.ended(dialogKey(r.callID, r.fromTag, r.toTag), now)
}

// sideDialog returns the dialog of the caller's side (aside) or the callee's, and its party.
// The caller holds c.mu.
func (c *Call) sideDialog(aside bool) (*dialogSide, string) {
	if aside {
		return c.a, c.seg.caller
	}
	return &c.winner.d, c.seg.callee
}

// sideSDP returns the latest description of the caller's side (aside) or the callee's.
func (c *Call) sideSDP(aside bool) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if aside {
		return c.media.sdpA
	}
	return c.media.sdpB
}

// putSide puts a new party on the caller's side (aside) or the callee's: its dialog d (for the
// callee's side, the leg l that holds it, or a new one). The call's current segment ends with
// why and the next begins. It returns the dialog that was there, now retired.
func (c *Call) putSide(aside bool, l *leg, d *dialogSide, party, why string) *dialogSide {
	now := time.Now()
	c.mu.Lock()
	c.closeSegment(now, why)
	old, _ := c.sideDialog(aside)
	if aside {
		c.a = d
		c.seg.caller = party
	} else {
		if l == nil {
			l = &leg{c: c, d: *d, ext: party}
			d = &l.d
		}
		c.winner = l
		c.seg.callee, c.rec.Callee = party, party
	}
	c.seg.start = now
	back := c.parked != nil && c.parked.side == aside // a party takes the parker's place
	c.mu.Unlock()
	c.e.table.add(d.key(), c, aside)
	c.e.table.remove(old.key(), now)
	if back {
		// From now on a BYE from either side ends the call for both (hangup spares the side
		// of a parked call that the parker left); the retriever's ACK may be followed at once
		// by the parked party's BYE.
		c.leavePark()
	}
	return old
}

// attended carries out a REFER whose target carries Replaces: the dialog it names belongs to
// another call (the consultation call o) in which the transferor talks to a third party. That
// party takes the transferor's place in this call, opposite the transferee; the consultation call
// ends and the transferor is released from both.
func (tr *transfer) attended(rep replacesID) {
	c := tr.c
	ref, ok := c.e.findDialog(rep)
	if !ok || ref.call == c {
		tr.log.Info("attended transfer: Replaces names no dialog of another call")
		tr.notify(481, true)
		return
	}
	o := ref.call
	if !o.moveLocked(stateTransferring) {
		tr.notify(481, true) // the consultation call ended, or is itself being transferred
		return
	}
	defer o.moveLocked(stateAnswered) // unless it ended
	// In o, the transferor's dialog is the one named; the third party is on the other side.
	o.mu.Lock()
	rDialog, _ := o.sideDialog(ref.aleg)
	third, party := o.sideDialog(!ref.aleg)
	o.mu.Unlock()
	// The third party gets the transferee's session, through this call's relay as coming from
	// the transferee's side; its answer goes to the transferee.
	toThird, err := c.sdpFrom(!tr.fromA, sendRecv(c.sideSDP(!tr.fromA)))
	if err != nil {
		tr.notify(statusOf(err), true)
		return
	}
	thirdAnswer, ok := o.reoffer(third, toThird)
	if !ok {
		tr.log.Warn("attended transfer: the third party did not take the new session")
		tr.notify(500, true)
		return
	}
	if _, code := tr.bridge(thirdAnswer); code != 200 {
		o.Hangup("attended transfer failed")
		tr.notify(code, true)
		return
	}
	o.mu.Lock()
	d := *third
	o.mu.Unlock()
	c.putSide(tr.fromA, nil, &d, party, "transferred")
	tr.released()
	o.byeIn(rDialog, "bye to transferor")
	o.endReplaced(c.id)
}

// endReplaced ends a call one of whose parties went to another call (by): its segment ends as
// transferred, and no BYE goes to the party that left.
func (c *Call) endReplaced(by string) {
	c.mu.Lock()
	c.closeSegment(time.Now(), "transferred")
	c.mu.Unlock()
	c.finish(200, "pbx", "transferred into call "+by)
}

// takeOver handles an INVITE with Replaces (RFC 3891 §3): the caller of c takes the place of the
// party of the dialog named, opposite that party's peer, in that dialog's call. c itself ends
// there, without a record of its own: its dialog now belongs to the other call.
func (c *Call) takeOver() {
	rep, ok := parseReplaces(c.aReq.GetHeader("Replaces").Value())
	if !ok {
		c.fail(400, "pbx", "malformed Replaces header")
		return
	}
	ref, found := c.e.findDialog(rep)
	if !found {
		if target, ext, ok := c.e.earlyLeg(rep); ok {
			c.pickupByReplaces(target, ext)
			return
		}
	}
	switch {
	case found && rep.earlyOnly:
		c.fail(486, "pbx", "Replaces is early-only and the dialog is confirmed") // RFC 3891 §3
		return
	case !found && c.e.endedDialog(rep):
		c.fail(603, "pbx", "the dialog Replaces names has ended") // RFC 3891 §3
		return
	case !found:
		c.fail(481, "pbx", "Replaces names no dialog")
		return
	}
	z := ref.call
	if !z.moveLocked(stateTransferring) {
		c.fail(takeOverRefusal(z), "pbx", "the dialog Replaces names cannot be replaced now")
		return
	}
	defer z.moveLocked(stateAnswered)
	if code, why := c.joinCall(z, ref.aleg, true); code != 200 {
		c.fail(code, "pbx", why)
	}
}

// joinCall puts c's caller in call z on side pIsA, opposite the party there: that party is
// re-INVITEd with c's offer, and c's caller is answered 200 with its answer (handOver). The
// party that was on side pIsA is hung up when byeOld. It returns 200, or the status and reason
// that refuse c's caller.
func (c *Call) joinCall(z *Call, pIsA, byeOld bool) (int, string) {
	toPeer, err := z.sdpFrom(pIsA, sendRecv(c.aReq.Body()))
	if err != nil {
		return statusOf(err), "media: " + err.Error()
	}
	z.mu.Lock()
	peer, _ := z.sideDialog(!pIsA)
	z.mu.Unlock()
	peerAnswer, ok := z.reoffer(peer, toPeer)
	if !ok {
		z.sdpFrom(pIsA, z.sideSDP(pIsA)) // the replaced party's media again
		return 500, "the peer did not take the new session"
	}
	forCaller, err := z.sdpFrom(!pIsA, peerAnswer)
	if err != nil {
		return statusOf(err), "media: " + err.Error()
	}
	c.handOver(z, pIsA, forCaller, peerAnswer, byeOld)
	return 200, ""
}

// handOver gives c's caller dialog to call z on side pIsA, answers the caller 200 with answer and
// releases the replaced party (BYE when byeOld).
func (c *Call) handOver(z *Call, pIsA bool, answer, peerSDP []byte, byeOld bool) {
	z.mu.Lock()
	z.media.setSDP(pIsA, c.aReq.Body(), peerSDP)
	acked := z.re.answeredWith(c.aReq.CSeq().SeqNo) // the caller's ACK now reaches z
	z.mu.Unlock()
	old := z.putSide(pIsA, nil, c.a, c.party(), "replaced")
	c.absorb()
	ok, err := z.e.respond(c.aReq, c.aTx, 200, c.a.localTag, z.stampSDP(c.a, answer), c.a.contact)
	if err == nil {
		z.retransmitUntil(c.aTx, ok, acked)
	}
	if byeOld {
		z.byeIn(old, "bye to replaced party")
		z.log.Info("dialog replaced", "by_call", c.id)
		z.emit(CallTransferred, 200)
	}
}

// takeOverRefusal is the status for an INVITE with Replaces whose dialog cannot be replaced:
// 603 for a call that ended (RFC 3891 §3), 491 for one in the middle of a transfer, 481 for one
// not answered yet (the PBX replaces confirmed dialogs only).
func takeOverRefusal(z *Call) int {
	z.mu.Lock()
	defer z.mu.Unlock()
	switch z.state {
	case stateEnded:
		return 603
	case stateTransferring:
		return 491
	}
	return 481
}

// absorb ends a call whose dialog another call has taken over: no record, no event, no BYE. Its
// own media relay, if routing had one allocated, is released.
func (c *Call) absorb() {
	c.mu.Lock()
	ok := c.move(stateEnded)
	m := c.media.session
	c.mu.Unlock()
	if ok {
		if m != nil {
			m.Close()
		}
		c.e.release(c)
		close(c.done)
	}
}
