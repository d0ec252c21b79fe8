package b2bua

import (
	"time"

	"github.com/emiago/sipgo/sip"
)

// answer connects the caller to the leg that answered (ring has ACKed it and cancelled the
// others): send 2xx to the caller and retransmit it until the caller's ACK (RFC 3261 §13.3.1.4,
// RFC 6026). Without an ACK within AckTimeout both sides are hung up. It reports false when the
// answer was not connected: the call was refused here (the callee's description cannot be
// relayed), or Hangup gave up on it meanwhile (conclude answers the caller then).
func (c *Call) answer(l *leg, res *sip.Response) bool {
	body, err := c.sdpFrom(false, res.Body())
	if err != nil {
		// The callee's answer cannot be relayed (no allowed codec, malformed): it answered, so it
		// is hung up, and the caller learns why.
		code := statusOf(err)
		c.log.Warn("callee's answer refused", "status", code, "error", err)
		c.dropAnswer(l)
		c.fail(code, "pbx", "media: "+err.Error())
		return false
	}
	c.stopAudio() // the caller hears the callee from now on, through the same port
	if !c.connect(l, body) {
		c.dropAnswer(l) // Hangup gave up on the call while this answer was on its way
		return false
	}
	l.answered()
	// Before the caller gets its 200: after it, the caller's BYE can end the call at any moment.
	c.emit(CallAnswered, 200)
	c.e.table.add(l.d.key(), c, false)
	c.e.table.add(c.a.key(), c, true)
	c.log.Info("call answered", "callee", c.callee, "b_call_id", l.d.callID)
	c.recordOnAnswer()
	if acked, sent := c.answerCaller(body, res); sent {
		c.passLateAnswer(l, acked)
	}
	return true
}

// answerCaller sends the caller its 200 with body (the callee's description for it) and
// retransmits it until the caller's ACK; without one within AckTimeout both sides are hung up.
// res, when set, is the callee's 2xx, whose session timer headers go with the 200. It reports
// whether the caller acknowledged, and whether the 200 was sent at all.
func (c *Call) answerCaller(body []byte, res *sip.Response) (acked, sent bool) {
	var hdrs []sip.Header
	if res != nil {
		hdrs = timerHeaders(res)
	}
	tx := c.serverTx() // Answer may run on another goroutine than Handle's (releaseTx)
	if tx == nil {
		c.log.Warn("200 to caller not sent: the INVITE transaction is released")
		c.Hangup("could not answer the caller")
		return false, false
	}
	ok, err := c.e.respond(c.aReq, tx, 200, c.a.localTag, c.stampSDP(c.a, body), append(hdrs, c.a.contact)...)
	if res != nil {
		c.armSession(res)
	}
	c.watchMedia()
	if err != nil {
		c.log.Warn("200 to caller not sent", "error", err)
		c.Hangup("could not answer the caller")
		return false, false
	}
	acked = c.retransmitUntil(tx, ok, c.acked.ch)
	if !acked {
		select {
		case <-c.done:
		case <-c.e.quit:
			c.Hangup("pbx shutdown") // also when Shutdown looked while the call was still ringing
		default:
			c.log.Warn("caller never acknowledged the 200: hanging up")
			c.Hangup("no ACK from the caller")
		}
	}
	return acked, true
}

// connect makes l the callee's side of the answered call and starts the call's first segment.
// It fails when Hangup gave up on the call meanwhile.
func (c *Call) connect(l *leg, calleeSDP []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.abort != "" || !c.move(stateAnswered) {
		return false
	}
	now := time.Now()
	c.winner = l
	c.setup.legs = nil // the others were cancelled; Hangup no longer needs them
	c.rec.Answer, c.rec.Callee = now, l.party()
	c.seg = segment{caller: c.rec.Caller, callee: l.party(), start: now}
	c.media.sdpA, c.media.sdpB = c.media.offer, calleeSDP
	return true
}

// dropAnswer hangs up a leg whose answer will not be connected.
func (c *Call) dropAnswer(l *leg) {
	l.releaseAck(nil)
	l.bye()
}

// passLateAnswer sends the callee the ACK a late offer held back, with the caller's answer from
// its ACK (none if the caller never acknowledged).
func (c *Call) passLateAnswer(l *leg, acked bool) {
	if !l.ackHeld.Load() {
		return
	}
	var answer []byte
	if acked {
		c.mu.Lock()
		body := c.media.ackBody
		c.mu.Unlock()
		var err error
		if answer, err = c.sdpFrom(true, body); err != nil {
			c.log.Warn("caller's answer in its ACK refused", "error", err)
			answer = nil
		}
		c.mu.Lock()
		c.media.sdpA = answer
		c.mu.Unlock()
	}
	l.releaseAck(answer)
}

// retransmitUntil resends a 2xx (T1 doubling to T2) until acked closes, the call ends or
// AckTimeout passes.
func (c *Call) retransmitUntil(tx sip.ServerTransaction, res *sip.Response, acked <-chan struct{}) bool {
	interval := sip.T1
	deadline := time.NewTimer(c.e.cfg.AckTimeout)
	defer deadline.Stop()
	for {
		select {
		case <-acked:
			return true
		case <-c.done:
			return false
		case <-c.e.quit:
			return false
		case <-deadline.C:
			return false
		case <-time.After(interval):
			if err := tx.Respond(res); err != nil {
				if err := c.e.client.TransportLayer().WriteMsg(res); err != nil {
					c.log.Debug("2xx retransmission", "error", err)
				}
			}
			interval = min(2*interval, sip.T2)
		}
	}
}

// party names the callee of a leg for the record: its extension, or the user of its URI.
func (l *leg) party() string {
	if l.ext != "" {
		return l.ext
	}
	return l.target.URI.User
}
