package b2bua

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/internal/sipx"
)

// Resolver maps a destination to the contacts to ring: a URI without host names an extension of
// the PBX (transfer targets are always such); a URI with a host may name an extension of the
// PBX's domain or a foreign destination, as the resolver decides. When the target
// cannot be called it returns a *StatusError saying why (404, 486, 480, ...).
type Resolver func(ctx context.Context, target sip.Uri) ([]Target, error)

// StatusError is a routing failure with the SIP status that describes it.
type StatusError struct {
	Code   int
	Reason string
}

func (e *StatusError) Error() string { return fmt.Sprintf("%d %s", e.Code, e.Reason) }

// transfer carries out a blind transfer (RFC 3515, RFC 5589 §6): one side (the transferor)
// asks with REFER that the other side (the transferee) be connected to the Refer-To target.
//
// The PBX accepts (202), reports progress to the transferor with NOTIFY (message/sipfrag), rings
// the target as the transferee with the transferee's current SDP, and on answer re-INVITEs the
// transferee with the target's SDP, so the transferee talks to the target in the same call. The
// transferor then gets a final NOTIFY and is hung up. If the target cannot be reached the final
// NOTIFY says why and the original call goes on.
func (c *Call) transfer(req *sip.Request, tx sip.ServerTransaction, fromA bool) {
	e := c.e
	c.mu.Lock()
	w := c.winner
	tag, x, y, ySDP, yUser := c.a.localTag, &c.a, &w.d, c.sdpB, c.callee
	if !fromA {
		tag, x, y, ySDP, yUser = w.d.localTag, &w.d, &c.a, c.sdpA, c.rec.Caller
	}
	c.mu.Unlock()
	refer := req.ReferTo()
	switch {
	case refer == nil || refer.Address.Scheme == "":
		e.respond(req, tx, 400, tag, nil, sip.NewHeader("Warning", `399 pbxkit "REFER needs a Refer-To"`))
		return
	case e.cfg.Resolve == nil:
		e.respond(req, tx, 501, tag, nil)
		return
	}
	if _, err := e.respond(req, tx, 202, tag, nil); err != nil {
		return
	}
	e.active.Add(1)
	defer e.active.Done()
	target := refer.Address
	log := c.log.With("transfer_to", target.String())
	c.notify(x, 100, false)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	// Only an extension of this PBX: a phone must not make the PBX call out anywhere it names.
	targets, err := e.cfg.Resolve(ctx, sip.Uri{Scheme: "sip", User: target.User})
	cancel()
	if err != nil {
		code := 404
		var se *StatusError
		if errors.As(err, &se) {
			code = se.Code
		}
		log.Info("transfer target cannot be called", "status", code, "error", err)
		c.notify(x, code, true)
		return
	}
	r := c.ring(targets, legOrigin{fromUser: yUser, toUser: target.User, body: ySDP}, ringOptions{})
	if r.leg == nil {
		log.Info("transfer target did not answer", "status", r.status, "reason", r.reason)
		c.notify(x, r.status, true)
		return
	}
	l, res := r.leg, r.res
	// The target speaks for the transferor's side now: through the relay, its description is
	// rewritten as coming from that side.
	targetSDP, err := c.sdpFrom(fromA, res.Body())
	if err != nil {
		log.Warn("transfer target's answer refused", "error", err)
		l.bye()
		c.notify(x, mediaStatus(err), true)
		return
	}
	answer, ok := c.reoffer(y, targetSDP)
	if ok {
		if answer, err = c.sdpFrom(!fromA, answer); err != nil {
			log.Warn("transferee's answer refused", "error", err)
			ok = false
		}
	}
	if !ok {
		log.Warn("transferee did not take the new session")
		l.bye()
		c.notify(x, 500, true)
		return
	}

	// The target takes the transferor's place in the call.
	c.mu.Lock()
	old := *x
	if fromA {
		c.a = l.d
		c.sdpA, c.sdpB = targetSDP, answer
		e.addDialog(&c.a, c, true)
	} else {
		c.winner = l
		c.sdpB, c.sdpA = targetSDP, answer
		e.addDialog(&l.d, c, false)
	}
	c.mu.Unlock()
	e.removeDialog(old.key())
	log.Info("call transferred")
	c.emit(CallTransferred, 200)
	c.notify(&old, 200, true)
	gone := &leg{c: c, d: old}
	gone.bye()
}

// notify reports a transfer's progress to the transferor in its dialog (RFC 3515 §2.4.5): the
// status line of the target's answer as message/sipfrag.
func (c *Call) notify(d *dialogSide, code int, final bool) {
	e := c.e
	c.mu.Lock()
	n := d.request(sip.NOTIFY, c.contact, e.cfg.BranchPrefix)
	c.mu.Unlock()
	n.AppendHeader(sip.NewHeader("Event", "refer"))
	state := "active;expires=60"
	if final {
		state = "terminated;reason=noresource"
	}
	n.AppendHeader(sip.NewHeader("Subscription-State", state))
	n.AppendHeader(sip.NewHeader("Content-Type", "message/sipfrag;version=2.0"))
	n.SetBody([]byte(fmt.Sprintf("SIP/2.0 %d %s\r\n", code, sipx.Reason(code))))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.clientFor(n).Do(ctx, n); err != nil {
		c.log.Debug("notify of transfer", "error", err)
	}
}

// reoffer re-INVITEs side d with sdp (the new peer's session) and returns d's answer.
func (c *Call) reoffer(d *dialogSide, sdp []byte) ([]byte, bool) {
	c.mu.Lock()
	out := d.request(sip.INVITE, c.contact, c.e.cfg.BranchPrefix)
	c.mu.Unlock()
	out.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	out.SetBody(sdp)
	res, err := c.inviteIn(d, out)
	if err != nil || !res.IsSuccess() {
		return nil, false
	}
	return res.Body(), true
}
