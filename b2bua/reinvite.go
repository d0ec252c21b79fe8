package b2bua

import (
	"context"
	"errors"
	"sync"

	"github.com/emiago/sipgo/sip"
)

// reinviteState is the bookkeeping of the re-INVITE in progress, from either side. While one is in
// progress another one, from either side, gets 491 Request Pending (RFC 3261 §14.2). It is over
// at the ACK of the 2xx relayed for it (CSeq ackSeq), which closes ack. Guarded by the call's mu.
type reinviteState struct {
	active   uint64        // the generation in progress, 0 for none
	gen      uint64        // the last generation started
	fromA    bool          // the one in progress came from the caller
	answered bool          // its 2xx has been relayed; only the ACK is missing
	ackSeq   uint32        // CSeq of the relayed 2xx, matched by its ACK
	ack      chan struct{} // closed by that ACK
}

// begin starts a re-INVITE from the caller (fromA) or the callee with CSeq cseq, and returns its
// generation, or 0 when another one is in progress (glare). The same side's next re-INVITE after
// its previous one was answered means that ACK was lost: the previous one is over then.
func (r *reinviteState) begin(fromA bool, cseq uint32) uint64 {
	if r.active != 0 {
		if !(r.answered && r.fromA == fromA && cseq > r.ackSeq) {
			return 0
		}
		r.closeAck()
	}
	r.gen++
	r.active, r.fromA, r.answered = r.gen, fromA, false
	return r.gen
}

// answeredWith notes that the 2xx for generation gen, with CSeq cseq, is being relayed, and
// returns the channel its ACK closes.
func (r *reinviteState) answeredWith(cseq uint32) <-chan struct{} {
	r.ack, r.ackSeq, r.answered = make(chan struct{}), cseq, true
	return r.ack
}

// end finishes generation gen unless its ACK (or a newer re-INVITE) already did.
func (r *reinviteState) end(gen uint64) {
	if r.active == gen {
		r.active = 0
	}
}

func (r *reinviteState) closeAck() {
	if r.ack != nil {
		close(r.ack)
		r.ack = nil
	}
}

// acked takes an ACK with CSeq cseq: it reports whether it acknowledged the relayed 2xx of the
// re-INVITE in progress, which is then over, so the next re-INVITE may start at once.
func (r *reinviteState) acked(cseq uint32, mu *sync.Mutex) bool {
	mu.Lock()
	defer mu.Unlock()
	if r.ack == nil || cseq != r.ackSeq {
		return false
	}
	r.closeAck()
	r.active = 0
	return true
}

// reinvite passes a re-INVITE (hold, resume, codec change) into the other dialog. The other side's
// 2xx is ACKed by the PBX, and the 2xx relayed back is retransmitted until its ACK.
func (c *Call) reinvite(req *sip.Request, tx sip.ServerTransaction, aleg bool, t *turn) {
	e := c.e
	self, other := c.sides(aleg)
	tag := self.localTag
	c.mu.Lock()
	var gen uint64
	if c.state == stateAnswered { // during a transfer the PBX's own re-INVITEs are in flight
		gen = c.re.begin(aleg, req.CSeq().SeqNo)
	}
	c.mu.Unlock()
	if gen == 0 {
		c.log.Debug("re-INVITE while another is in progress: 491", "cseq", req.CSeq().SeqNo)
		e.respond(req, tx, 491, tag, nil)
		return
	}
	defer func() {
		c.mu.Lock()
		c.re.end(gen)
		c.mu.Unlock()
	}()
	out, err := c.passOn(req, aleg, other)
	if err != nil {
		c.log.Info("re-INVITE offer refused", "error", err)
		e.respond(req, tx, statusOf(err), tag, nil)
		return
	}
	offer := out.Body()
	c.log.Debug("re-INVITE passed on", "cseq", req.CSeq().SeqNo)
	res, err := c.inviteIn(other, out, t)
	if answer, ok := c.reinviteAnswer(req, tx, tag, aleg, res, err); ok {
		c.relayReinviteOK(req, tx, self, aleg, res, offer, answer)
	}
}

// reinviteAnswer checks the other side's final answer to a relayed re-INVITE and returns its
// description for the sender; anything but a usable 2xx is answered to the sender here.
func (c *Call) reinviteAnswer(req *sip.Request, tx sip.ServerTransaction, tag string, aleg bool, res *sip.Response, err error) ([]byte, bool) {
	e := c.e
	switch {
	case errors.Is(err, errCallEnded):
		return nil, false
	case errors.Is(err, errNoAnswer):
		c.log.Debug("re-INVITE got no answer")
		e.respond(req, tx, 408, tag, nil)
		return nil, false
	case err != nil:
		c.log.Warn("re-INVITE not passed on", "error", err)
		e.respond(req, tx, 500, tag, nil)
		return nil, false
	case !res.IsSuccess():
		c.log.Debug("re-INVITE refused by the other side", "status", res.StatusCode)
		e.respond(req, tx, res.StatusCode, tag, nil)
		return nil, false
	}
	answer, err := c.sdpOut(res, aleg)
	if err != nil {
		// The other side took an offer whose answer cannot be relayed: the sender gets the error
		// (the other side keeps the new session until the next offer).
		c.log.Warn("re-INVITE answer refused", "error", err)
		e.respond(req, tx, statusOf(err), tag, nil)
		return nil, false
	}
	return answer, true
}

// relayReinviteOK answers the sender's re-INVITE (in its dialog self) 200 and retransmits it
// until its ACK.
func (c *Call) relayReinviteOK(req *sip.Request, tx sip.ServerTransaction, self *dialogSide, aleg bool, res *sip.Response, offer, answer []byte) {
	c.mu.Lock()
	if len(offer) > 0 && len(answer) > 0 {
		c.media.setSDP(aleg, offer, answer)
	}
	acked := c.re.answeredWith(req.CSeq().SeqNo)
	tag, contact := self.localTag, self.contact
	if isSDP(res.ContentType()) && len(answer) > 0 {
		answer = self.origin.stamp(answer)
	}
	c.mu.Unlock()
	ok, err := c.e.respond(req, tx, 200, tag, answer, append(timerHeaders(res), contact)...)
	if err != nil {
		c.log.Debug("re-INVITE answer not sent", "error", err)
		return
	}
	c.armSession(res) // a re-INVITE refreshes the session
	c.log.Debug("re-INVITE done", "acked", c.retransmitUntil(tx, ok, acked))
}

// inviteIn sends out, an INVITE built in dialog d, waits for its final answer and, for a 2xx,
// takes the peer's new Contact as d's target and ACKs it (RFC 3261 §13.2.2.4). It returns the
// final answer, errNoAnswer when the transaction ended without one, or errCallEnded. t, when
// set, is done once out is sent.
func (c *Call) inviteIn(d *dialogSide, out *sip.Request, t *turn) (*sip.Response, error) {
	e := c.e
	ctx, cancel := context.WithTimeout(context.Background(), 64*sip.T1)
	defer cancel()
	otx, err := e.clientFor(out).TransactionRequest(ctx, out)
	t.done()
	if err != nil {
		return nil, err
	}
	defer otx.Terminate()
	for {
		select {
		case res := <-otx.Responses():
			if res.IsProvisional() {
				continue
			}
			if !res.IsSuccess() || !usable(res) {
				return res, nil
			}
			c.mu.Lock()
			if t, ok := remoteTargetOf(res); ok {
				d.target = t
			}
			ack := d.requestCSeq(sip.ACK, out.CSeq().SeqNo, e.cfg.BranchPrefix)
			c.mu.Unlock()
			if err := e.clientFor(ack).WriteRequest(ack); err != nil {
				c.log.Warn("ack of re-INVITE", "error", err)
			}
			return res, nil
		case <-otx.Done():
			return nil, errNoAnswer
		case <-c.done:
			return nil, errCallEnded
		}
	}
}
