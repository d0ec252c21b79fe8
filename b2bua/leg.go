package b2bua

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/internal/sipx"
)

// leg is one dialog the PBX opened toward a callee's contact with an INVITE: while it rings, and
// once answered as the callee's side of the call.
type leg struct {
	c            *Call
	target       Target
	inv          *sip.Request // the INVITE sent, while the leg may need it (CANCEL, a challenge); nil once answered
	cseq         uint32       // the INVITE's CSeq: the ACK's
	branch       string
	in           *inbox
	d            dialogSide
	decided      <-chan struct{} // closed once the ring this leg belongs to is decided
	ext          string          // the extension called, if any
	won          atomic.Bool     // this leg's 2xx was taken: later 2xx are retransmissions
	endedEmitted atomic.Bool     // CallLegEnded was published for it
	ackHeld      atomic.Bool     // late offer: the ACK waits for the caller's answer
	ackBody      []byte          // the answer the ACK carries (late offer), under c.mu
	failed       atomic.Bool     // the leg's ringing ended with a failure

	authTried bool // a challenge was answered (authRetry); read and written by the reader only

	mu                                sync.Mutex // also guards inv and tx, which authRetry replaces
	ringing, cancelWanted, cancelSent bool
}

// legOrigin says whom a B-leg is from and to, and what it offers.
type legOrigin struct {
	fromUser, display, toUser string
	callerIDSet               bool         // routing chose fromUser: a target's FromUser does not replace it
	body                      []byte       // the SDP offered
	headers                   *sip.Request // request whose chosen headers are copied, or nil
	extra                     []sip.Header // headers routing added
}

// origin is the caller's side of the call, for its B-legs.
func (c *Call) origin() legOrigin {
	c.mu.Lock()
	defer c.mu.Unlock()
	return legOrigin{fromUser: c.aReq.From().Address.User, display: c.aReq.From().DisplayName,
		toUser: c.callee, body: c.media.offer, headers: c.aReq}
}

// legEvent is what a leg's reader tells its ring: a response, or the end of the transaction.
type legEvent struct {
	l   *leg
	res *sip.Response
	err error // the transaction ended without a final response
}

// newLeg builds the dialog toward one contact: its own Call-ID, tags, Via and Contact; only o's
// user, display name, SDP and chosen headers cross over.
func (c *Call) newLeg(t Target, o legOrigin, decided <-chan struct{}) *leg {
	transport := t.Transport
	if transport == "" {
		transport = "udp"
	}
	l := &leg{c: c, target: t, decided: decided, ext: t.Ext, in: newInbox()}
	fromUser, domain := o.fromUser, c.host()
	if t.FromUser != "" && !o.callerIDSet {
		fromUser = t.FromUser
	}
	toUser := o.toUser
	if t.Domain != "" {
		domain, toUser = t.Domain, t.URI.User // a provider: To names whom the Request-URI names
	}
	l.d = dialogSide{
		callID:    sip.GenerateTagN(24) + "@pbxkit",
		localURI:  sip.Uri{Scheme: "sip", User: fromUser, Host: domain},
		localTag:  sip.GenerateTagN(16),
		remoteURI: sip.Uri{Scheme: "sip", User: toUser, Host: domain},
		target:    t.URI,
		dest:      t.Dest,
		transport: transport,
		cseq:      1,
		contact:   c.e.contacts.get(c.host(), c.e.cfg.contactPort(transport), transport, strings.EqualFold(t.URI.Scheme, "sips")),
	}
	return l
}

// invite builds the leg's INVITE with o's offer and headers.
func (l *leg) invite(o legOrigin) *sip.Request {
	c := l.c
	inv := l.d.requestCSeq(sip.INVITE, 1, c.e.cfg.BranchPrefix)
	if o.display != "" {
		inv.From().DisplayName = o.display
	}
	if mf := c.aReq.MaxForwards(); mf != nil && *mf > 0 {
		*inv.MaxForwards() = *mf - 1
	}
	inv.AppendHeader(sip.NewHeader("Allow", sipx.Allow))
	if o.headers != nil {
		copyTimerHeaders(o.headers, inv)
		for _, name := range c.e.cfg.CopyHeaders {
			for _, h := range o.headers.GetHeaders(name) {
				inv.AppendHeader(sip.NewHeader(h.Name(), h.Value()))
			}
		}
	}
	for _, h := range o.extra {
		inv.AppendHeader(h)
	}
	for _, h := range l.target.Headers {
		inv.AppendHeader(sip.HeaderClone(h))
	}
	if len(o.body) > 0 {
		inv.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		inv.SetBody(l.d.origin.stamp(o.body)) // the leg is not shared yet: no lock
	}
	return inv
}

// send sends the leg's INVITE and starts reading its answers into events.
func (l *leg) send(o legOrigin, events chan<- legEvent) error {
	e := l.c.e
	inv := l.invite(o)
	l.branch, _ = inv.Via().Params.Get("branch")
	// Filed before sending: the first answer can arrive before TransactionRequest returns.
	e.table.addLeg(l.branch, l)
	tx, err := l.transaction(inv)
	if err != nil {
		e.table.removeLeg(l.branch)
		l.unreachable(err)
		return err
	}
	l.mu.Lock()
	l.inv, l.cseq = inv, inv.CSeq().SeqNo
	l.mu.Unlock()
	e.bg.Add(1)
	go l.read(events, tx)
	return nil
}

// transaction sends inv in a new client transaction.
func (l *leg) transaction(inv *sip.Request) (sip.ClientTransaction, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return l.c.e.clientFor(inv).TransactionRequest(ctx, inv)
}

// read passes the leg's responses, in arrival order, to the ring while it runs, and deals with
// late ones itself. The transaction's own channel is drained (sipgo blocks until it is read) and
// only used for a response the inbox has not delivered yet.
func (l *leg) read(events chan<- legEvent, tx sip.ClientTransaction) {
	e := l.c.e
	defer e.bg.Done()
	defer func() { e.table.removeLeg(l.branch) }() // the branch of the last INVITE sent
	defer e.recoverPanic("b-leg reader")
	var seen seenRing
	var taken *sip.Response // the latest response read from the transaction's own channel
	heard := false          // the contact answered something: its connection worked
	deliver := func(res *sip.Response) {
		if !seen.add(res) || !l.current(res) {
			return
		}
		heard = true
		if next := l.authRetry(res, tx, taken == res); next != nil {
			tx = next // the challenge is answered in a new transaction; the old one ends alone
			return
		}
		if res.IsProvisional() {
			l.provisional()
		}
		select {
		case events <- legEvent{l: l, res: res}:
		case <-l.decided:
			l.late(res)
		}
	}
	drain := func() {
		for _, res := range l.in.take() {
			deliver(res)
		}
	}
	for {
		select {
		case <-l.in.ready:
			drain()
		case res := <-tx.Responses():
			taken = res
			drain() // everything that arrived before res goes first
			deliver(res)
		case <-tx.Done():
			ended := tx
			drain()
			if tx != ended {
				continue // drain answered a challenge: the new transaction goes on
			}
			if !heard {
				l.unreachable(tx.Err())
			}
			select {
			case events <- legEvent{l: l, err: tx.Err()}:
			case <-l.decided:
			}
			return
		}
	}
}

// unreachable tells the engine's OnUnreachable of a contact whose connection failed before it
// answered anything.
func (l *leg) unreachable(err error) {
	f := l.c.e.cfg.OnUnreachable
	if f == nil || err == nil || !errors.Is(err, sip.ErrTransactionTransport) && !isConnError(err) {
		return
	}
	if l.d.transport == "udp" {
		return // a datagram that could not be sent says nothing about the phone
	}
	f(l.target, err)
}

// provisional notes that the callee answered 1xx: a CANCEL may be sent from now on (RFC 3261
// §9.1), and one that was wanted earlier goes out now.
func (l *leg) provisional() { l.mayCancel(func() { l.ringing = true }) }

// cancel stops the leg ringing: CANCEL now if it has answered 1xx, else as soon as it does.
func (l *leg) cancel() { l.mayCancel(func() { l.cancelWanted = true }) }

// mayCancel applies set to the leg's state and sends the CANCEL once it is both wanted and
// allowed.
func (l *leg) mayCancel(set func()) {
	l.mu.Lock()
	set()
	send := l.ringing && l.cancelWanted && !l.cancelSent
	l.cancelSent = l.cancelSent || send
	inv := l.inv
	l.mu.Unlock()
	if send && inv != nil {
		l.c.e.sendAsync(cancelFor(inv), l.c.log, "cancel")
	}
}

// late handles a response after the ring was decided. A 2xx from the leg that won is a
// retransmission (our ACK was lost): ACK again. A 2xx from any other leg answered too late: ACK
// it and hang that dialog up at once (RFC 3261 §13.2.2.4, §16.7 step 5).
func (l *leg) late(res *sip.Response) {
	if !res.IsSuccess() || !usable(res) {
		return
	}
	if l.won.Load() {
		if !l.ackHeld.Load() {
			l.ack()
		}
		return
	}
	l.establish(res)
	l.ack()
	l.bye()
}

// establish completes the leg's dialog from its 2xx. Like every use of a dialog once the call is
// up, it holds the call's lock: relayed requests and transfers use the same dialog concurrently.
func (l *leg) establish(res *sip.Response) {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	l.d.remoteTag, _ = res.To().Params.Get("tag")
	if t, ok := remoteTargetOf(res); ok {
		l.d.target = t
	}
	l.d.routes = routeSet(res.GetHeaders("Record-Route"), true)
}

// releaseAck sends the ACK a late offer held back, with the caller's answer (or none).
func (l *leg) releaseAck(answer []byte) {
	if !l.ackHeld.Load() {
		return
	}
	l.c.mu.Lock()
	if len(answer) > 0 {
		l.ackBody = l.d.origin.stamp(answer)
	}
	l.c.mu.Unlock()
	l.ackHeld.Store(false)
	l.ack()
}

// ack acknowledges the leg's 2xx (its INVITE's CSeq), with the late offer's answer if any.
func (l *leg) ack() {
	l.mu.Lock()
	cseq := l.cseq
	l.mu.Unlock()
	l.c.mu.Lock()
	ack := l.d.requestCSeq(sip.ACK, cseq, l.c.e.cfg.BranchPrefix)
	if len(l.ackBody) > 0 {
		ack.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		ack.SetBody(l.ackBody)
	}
	l.c.mu.Unlock()
	if err := l.c.e.clientFor(ack).WriteRequest(ack); err != nil {
		l.c.log.Warn("ack to callee", "error", err)
	}
}

// bye ends the leg's dialog; the answer is waited for in the background.
func (l *leg) bye() { l.c.byeIn(&l.d, "bye to callee") }

// byeIn sends BYE in dialog d; the answer is waited for in the background.
func (c *Call) byeIn(d *dialogSide, what string) {
	c.mu.Lock()
	bye := d.request(sip.BYE, c.e.cfg.BranchPrefix)
	c.mu.Unlock()
	c.e.sendAsync(bye, c.log, what)
}

// isConnError reports whether err is a failure to open or use a connection.
func isConnError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op)
}

// answered lets the INVITE go once the leg is the callee's side of the call: a held call keeps
// only its dialog (the message with all its parsed headers was the largest part of it).
func (l *leg) answered() {
	l.mu.Lock()
	l.inv = nil
	l.mu.Unlock()
}
