package b2bua

import (
	"context"

	"github.com/emiago/sipgo/sip"
)

// inDialog handles a request the caller (aleg) or the callee sent inside the call's dialogs. t is
// the request's turn among the call's requests: it is done once the request is dispatched (passed
// on, answered or refused), so the next one may go on while this one waits for an answer.
func (c *Call) inDialog(req *sip.Request, tx sip.ServerTransaction, aleg bool, t *turn) {
	if c.appInDialog(req, tx, aleg, t) {
		return
	}
	if req.Method != sip.ACK && req.Method != sip.BYE && !c.bridged() {
		// The PBX answered the caller itself and the call ended (or the PBX no longer is the
		// caller's other end): there is no callee to pass the request to, and no dialog left.
		c.e.respond(req, tx, 481, c.localTag(aleg), nil)
		return
	}
	switch req.Method {
	case sip.ACK:
		c.ackIn(req, aleg)
	case sip.BYE:
		c.e.respond(req, tx, 200, c.localTag(aleg), nil)
		by := side(aleg)
		c.hangup(!aleg, aleg, by, "BYE from the "+by)
	case sip.REFER:
		c.refer(req, tx, aleg, t)
	case sip.INVITE:
		c.reinvite(req, tx, aleg, t)
	default:
		if c.isParked() {
			// Nobody is on the other side to take it.
			c.e.respond(req, tx, 491, c.localTag(aleg), nil)
			return
		}
		if digit, ok := infoDigit(req); ok && req.Method == sip.INFO {
			c.keyPressed(aleg, digit, DTMFInfo) // and passed on, as ever
		}
		c.relay(req, tx, aleg, t)
	}
}

// side names the caller's side (aleg) or the callee's.
func side(aleg bool) string {
	if aleg {
		return "caller"
	}
	return "callee"
}

// ackIn takes an ACK: of a relayed re-INVITE's 2xx, or the caller's ACK of the call's 200.
func (c *Call) ackIn(req *sip.Request, aleg bool) {
	if !aleg {
		c.pickerAcked()
	}
	if c.re.acked(req.CSeq().SeqNo, &c.mu) {
		return
	}
	if aleg {
		c.mu.Lock()
		if !c.acked.fired() {
			c.media.ackBody = req.Body() // a late offer's answer
		}
		c.mu.Unlock()
		c.acked.fire()
	}
}

// localTag is the PBX's tag in the caller's dialog (aleg) or the callee's.
func (c *Call) localTag(aleg bool) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if aleg {
		return c.a.localTag
	}
	if c.winner == nil {
		return ""
	}
	return c.winner.d.localTag
}

// bridged reports whether the call has a callee's dialog (the callee that answered, or was
// bridged in after the PBX answered the caller).
func (c *Call) bridged() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.winner != nil
}

// sides returns, for a request from the caller (aleg) or the callee, the sender's dialog and the
// other side's dialog, where the request is passed on. Without a callee's dialog (bridged false)
// the callee's side is nil.
func (c *Call) sides(aleg bool) (self, other *dialogSide) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var callee *dialogSide
	if c.winner != nil {
		callee = &c.winner.d
	}
	if aleg {
		return c.a, callee
	}
	return callee, c.a
}

// relay passes a mid-call request (INFO, UPDATE, OPTIONS, MESSAGE, NOTIFY) to the other side and
// its answer back.
func (c *Call) relay(req *sip.Request, tx sip.ServerTransaction, aleg bool, t *turn) {
	e := c.e
	self, other := c.sides(aleg)
	tag := self.localTag
	out, err := c.passOn(req, aleg, other)
	if err != nil {
		c.log.Info("description refused", "method", req.Method, "error", err)
		e.respond(req, tx, statusOf(err), tag, nil)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 64*sip.T1)
	defer cancel()
	otx, err := e.clientFor(out).TransactionRequest(ctx, out)
	t.done() // sent: the call's next request may be passed on
	if err != nil {
		e.respond(req, tx, 408, tag, nil)
		return
	}
	defer otx.Terminate()
	res, err := finalAnswer(ctx, otx)
	if err != nil {
		e.respond(req, tx, 408, tag, nil)
		return
	}
	answer, err := c.sdpOut(res, aleg)
	if err != nil {
		c.log.Info("answer refused", "method", req.Method, "error", err)
		e.respond(req, tx, statusOf(err), tag, nil)
		return
	}
	if isSDP(res.ContentType()) {
		answer = c.stampSDP(self, answer)
	}
	e.respond(req, tx, res.StatusCode, tag, answer, timerHeaders(res)...)
	if req.Method == sip.UPDATE && res.IsSuccess() {
		c.armSession(res) // an UPDATE refreshes the session too
	}
}

// passOn builds the request that carries req from the caller (aleg) or the callee into the other
// side's dialog: same method, body (its SDP rewritten by the relay) and session timer headers.
func (c *Call) passOn(req *sip.Request, aleg bool, other *dialogSide) (*sip.Request, error) {
	body, err := c.sdpIn(req, aleg)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	out := other.request(req.Method, c.e.cfg.BranchPrefix)
	if isSDP(req.ContentType()) && len(body) > 0 {
		body = other.origin.stamp(body)
	}
	c.mu.Unlock()
	if ct := req.ContentType(); ct != nil {
		out.AppendHeader(sip.NewHeader("Content-Type", ct.Value()))
	}
	copyTimerHeaders(req, out)
	out.SetBody(body)
	return out, nil
}

// finalAnswer waits for the final answer of a non-INVITE client transaction.
func finalAnswer(ctx context.Context, tx sip.ClientTransaction) (*sip.Response, error) {
	for {
		select {
		case res := <-tx.Responses():
			if !res.IsProvisional() {
				return res, nil
			}
		case <-tx.Done():
			return nil, errNoAnswer
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
