package b2bua

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/internal/sipx"
)

// Resolver maps a destination to the contacts to ring: a URI without host names an extension of
// the PBX (transfer targets are always such); a URI with a host may name an extension of the
// PBX's domain or a foreign destination, as the resolver decides. When the target
// cannot be called it returns a *StatusError saying why (404, 486, 480, ...).
type Resolver func(ctx context.Context, target sip.Uri) ([]Target, error)

// transfer is one REFER being carried out (RFC 3515): one side of the call (the transferor) asks
// that the other side (the transferee) be connected to someone else.
type transfer struct {
	c      *Call
	fromA  bool        // the transferor is the caller's side
	x      *dialogSide // the transferor's dialog
	target sip.Uri     // Refer-To
	log    *slog.Logger
}

// refer takes a REFER: blind transfer to the Refer-To target, or attended transfer when the
// target carries Replaces (RFC 3891). The PBX accepts (202), carries the transfer out itself and
// reports to the transferor with NOTIFY (message/sipfrag). A REFER while another transfer is in
// progress gets 491.
func (c *Call) refer(req *sip.Request, tx sip.ServerTransaction, fromA bool, t *turn) {
	e := c.e
	self, _ := c.sides(fromA)
	tag := self.localTag
	referTo := req.ReferTo()
	switch {
	case referTo == nil || referTo.Address.Scheme == "":
		e.respond(req, tx, 400, tag, nil, sip.NewHeader("Warning", `399 pbxkit "REFER needs a Refer-To"`))
		return
	case e.cfg.Resolve == nil:
		e.respond(req, tx, 501, tag, nil)
		return
	case !c.moveLocked(stateTransferring):
		e.respond(req, tx, 491, tag, nil)
		return
	}
	e.active.Add(1)
	defer e.active.Done()
	defer c.moveLocked(stateAnswered) // unless the call ended meanwhile
	if _, err := e.respond(req, tx, 202, tag, nil); err != nil {
		return
	}
	t.done()
	c.mu.Lock()
	x := c.a
	if !fromA {
		x = &c.winner.d
	}
	c.mu.Unlock()
	tr := &transfer{c: c, fromA: fromA, x: x, target: *referTo.Address.Clone(), log: c.log.With("transfer_to", referTo.Address.String())}
	tr.notify(100, false)
	if rep, ok := replacesOf(referTo.Address); ok {
		tr.attended(rep)
		return
	}
	tr.blind()
}

// blind rings the target as the transferee with the transferee's current SDP and, on answer,
// re-INVITEs the transferee with the target's SDP, so the transferee talks to the target in the
// same call (RFC 5589 §6). The transferor then gets a final NOTIFY and is hung up. If the target
// cannot be reached the final NOTIFY says why and the call goes on as it was.
func (tr *transfer) blind() {
	c := tr.c
	if park := c.e.cfg.Park.Number; park != "" && tr.target.User == park {
		tr.park()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	// Only an extension of this PBX: a phone must not make the PBX call out anywhere it names.
	targets, err := c.e.cfg.Resolve(ctx, sip.Uri{Scheme: "sip", User: tr.target.User})
	cancel()
	if err != nil {
		code := 404
		var se *StatusError
		if errors.As(err, &se) {
			code = se.Code
		}
		tr.log.Info("transfer target cannot be called", "status", code, "error", err)
		tr.notify(code, true)
		return
	}
	c.mu.Lock()
	peerSDP, peerUser := c.media.sdpB, c.rec.Callee
	if !tr.fromA {
		peerSDP, peerUser = c.media.sdpA, c.seg.caller
	}
	c.mu.Unlock()
	r := c.ring(targets, legOrigin{fromUser: peerUser, toUser: tr.target.User, body: sendRecv(peerSDP)}, ringOptions{})
	if r.leg == nil {
		tr.log.Info("transfer target did not answer", "status", r.status, "reason", r.reason)
		tr.notify(r.status, true)
		return
	}
	// The target answered the transferee's session; the transferee's answer to the target's is
	// not needed by the target, which keeps its own.
	if _, code := tr.bridge(r.res.Body()); code != 200 {
		r.leg.bye()
		tr.notify(code, true)
		return
	}
	c.putSide(tr.fromA, r.leg, &r.leg.d, r.leg.party(), "transferred")
	tr.released()
}

// bridge connects the transferee with a new party whose description is newSDP (as the new party
// sent it): the transferee is re-INVITEd with it, through the call's relay as coming from the
// transferor's side. It returns the transferee's answer rewritten for the new party and 200, or
// the status that says why the transferee did not take the new session.
func (tr *transfer) bridge(newSDP []byte) ([]byte, int) {
	c := tr.c
	toTransferee, err := c.sdpFrom(tr.fromA, newSDP)
	if err != nil {
		tr.log.Warn("new party's description refused", "error", err)
		return nil, statusOf(err)
	}
	c.mu.Lock()
	y := &c.winner.d
	if !tr.fromA {
		y = c.a
	}
	c.mu.Unlock()
	answer, ok := c.reoffer(y, toTransferee)
	if !ok {
		tr.log.Warn("transferee did not take the new session")
		return nil, 500
	}
	forNew, err := c.sdpFrom(!tr.fromA, answer)
	if err != nil {
		tr.log.Warn("transferee's answer refused", "error", err)
		return nil, statusOf(err)
	}
	c.mu.Lock()
	c.media.setSDP(tr.fromA, newSDP, answer)
	c.mu.Unlock()
	return forNew, 200
}

// released ends the transferor's part after its place was taken: final NOTIFY, then BYE. A BYE
// the transferor sends itself meanwhile finds its dialog retired (200).
func (tr *transfer) released() {
	c := tr.c
	tr.log.Info("call transferred")
	c.emit(CallTransferred, 200)
	tr.notify(200, true)
	c.byeIn(tr.x, "bye to transferor")
}

// notify reports a transfer's progress to the transferor in its dialog (RFC 3515 §2.4.5): the
// status line of the target's answer as message/sipfrag. A progress report is sent in the
// background; the final one is waited for (the transferor is hung up after it).
func (tr *transfer) notify(code int, final bool) {
	tr.notifyPhrase(code, sipx.Reason(code), final)
}

// notifyPhrase is notify with the reason phrase given ("Parked at 701").
func (tr *transfer) notifyPhrase(code int, phrase string, final bool) {
	c := tr.c
	c.mu.Lock()
	n := tr.x.request(sip.NOTIFY, c.e.cfg.BranchPrefix)
	c.mu.Unlock()
	n.AppendHeader(sip.NewHeader("Event", "refer"))
	state := "active;expires=60"
	if final {
		state = "terminated;reason=noresource"
	}
	n.AppendHeader(sip.NewHeader("Subscription-State", state))
	n.AppendHeader(sip.NewHeader("Content-Type", "message/sipfrag;version=2.0"))
	n.SetBody(fmt.Appendf(nil, "SIP/2.0 %d %s\r\n", code, phrase))
	// Sent here, in order; only the wait for the answer may go to the background.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	tx, err := c.e.clientFor(n).TransactionRequest(ctx, n)
	if err != nil {
		cancel()
		c.log.Debug("notify of transfer", "error", err)
		return
	}
	wait := func() {
		defer cancel()
		defer tx.Terminate()
		if _, err := finalAnswer(ctx, tx); err != nil {
			c.log.Debug("notify of transfer", "error", err)
		}
	}
	if final {
		wait()
		return
	}
	c.e.bg.Add(1)
	go func() {
		defer c.e.bg.Done()
		wait()
	}()
}

// reoffer re-INVITEs side d with sdp (the new peer's session) and returns d's answer.
func (c *Call) reoffer(d *dialogSide, sdp []byte) ([]byte, bool) {
	c.mu.Lock()
	out := d.request(sip.INVITE, c.e.cfg.BranchPrefix)
	sdp = d.origin.stamp(sdp)
	c.mu.Unlock()
	out.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	out.SetBody(sdp)
	res, err := c.inviteIn(d, out, nil)
	if err != nil || !res.IsSuccess() {
		return nil, false
	}
	return res.Body(), true
}
