package b2bua

import (
	"context"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Ringing: one INVITE per target at once (forking), the first 2xx wins and the others are
// cancelled; 180/183 reach the caller; a 3xx is followed; when every leg failed, the caller's
// status is chosen as a forking proxy would (choose.go).

// ringOptions say how a ring behaves besides reaching its targets.
type ringOptions struct {
	ctx     context.Context // ringing stops when it ends; nil for never
	timeout time.Duration   // how long to ring; 0 for the engine's RingTimeout
	caller  bool            // call setup: relay 180/183 to the caller and stop when it CANCELs
	follow  bool            // follow 3xx (or pass them on, with PassRedirects); otherwise a 3xx counts as 480
}

// ringResult is what ringing came to: the leg that answered with its 2xx (already ACKed, the
// other legs cancelled), or the status that tells the caller why none did.
type ringResult struct {
	leg     *leg
	res     *sip.Response
	status  int
	by      string       // who ended it: "callee", "caller" or "pbx"
	reason  string       // why, in words
	headers []sip.Header // Contacts of a 3xx passed on
	silent  bool         // the caller's transaction has its answer already (CANCEL, failure)
	pickup  *pickedUp    // another phone picked the call up (pickup.go)
}

// ringer is one ring in progress.
type ringer struct {
	c         *Call
	o         legOrigin
	opt       ringOptions
	events    chan legEvent
	decided   chan struct{} // closed when the ring returns: legs handle late answers themselves
	legs      []*leg
	pending   int             // legs still ringing
	tried     map[string]bool // targets already rung (redirects go nowhere twice)
	hops      int             // redirect targets followed
	relayed   map[int]bool    // provisional codes already relayed to the caller
	out       outcome
	redirects []sip.Header    // Contacts of the first 3xx, when 3xx answers are passed on
	pickups   chan *pickupReq // pickers of a caller's ring (pickup.go)
}

// maxRedirects bounds how many contacts from 3xx answers one call follows.
const maxRedirects = 5

// ring sends one B-leg per target with o's offer and waits until one answers, all fail, the ring
// timeout passes, the call ends or the PBX shuts down.
func (c *Call) ring(targets []Target, o legOrigin, opt ringOptions) ringResult {
	r := &ringer{c: c, o: o, opt: opt, events: make(chan legEvent), decided: make(chan struct{}),
		tried: map[string]bool{}, relayed: map[int]bool{}}
	defer close(r.decided)
	if opt.caller {
		r.pickups = make(chan *pickupReq)
		c.mu.Lock()
		c.setup.ring = r
		c.mu.Unlock()
		defer func() {
			c.mu.Lock()
			c.setup.ring = nil
			c.mu.Unlock()
		}()
	}
	for _, t := range targets {
		r.tried[t.URI.String()] = true
		r.start(t)
	}
	return r.wait()
}

// start sends a leg toward t; a leg that cannot be sent counts as unreachable.
func (r *ringer) start(t Target) bool {
	c := r.c
	l := c.newLeg(t, r.o, r.decided)
	if err := l.send(r.o, r.events); err != nil {
		c.log.Warn("b-leg not sent", "target", t.URI.String(), "dest", t.Dest, "error", err)
		r.out.ended(err)
		return false
	}
	if r.opt.caller {
		c.mu.Lock()
		c.setup.legs = append(c.setup.legs, l) // for Hangup while ringing
		c.mu.Unlock()
	}
	r.legs = append(r.legs, l)
	r.pending++
	if l.ext != "" {
		c.emitWith(Event{Kind: CallLegRinging, Leg: l.ext, Pickable: r.opt.caller})
	}
	return true
}

// legEnded reports, once, that l stopped being rung without answering.
func (r *ringer) legEnded(l *leg) {
	if l.ext != "" && !l.endedEmitted.Swap(true) {
		r.c.emitWith(Event{Kind: CallLegEnded, Leg: l.ext})
	}
}

// stop cancels every leg but keep.
func (r *ringer) stop(keep *leg) {
	for _, l := range r.legs {
		if l != keep {
			l.cancel()
			r.legEnded(l)
		}
	}
}

// wait runs the ring until it is decided.
func (r *ringer) wait() ringResult {
	c := r.c
	var cancelled, callerGone <-chan struct{} // nil (never ready) unless this is call setup
	if r.opt.caller {
		cancelled, callerGone = c.cancelled.ch, c.aTx.Done()
	}
	var stopped <-chan struct{}
	if r.opt.ctx != nil {
		stopped = r.opt.ctx.Done()
	}
	timeout := c.e.cfg.RingTimeout
	if r.opt.timeout > 0 {
		timeout = r.opt.timeout
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for r.pending > 0 {
		var res ringResult
		select {
		case ev := <-r.events:
			var done bool
			if res, done = r.onEvent(ev); done {
				return res
			}
			continue
		case req := <-r.pickups:
			var done bool
			if res, done = r.onPickup(req); done {
				return res
			}
			continue
		case <-timer.C:
			res = ringResult{status: 480, by: "pbx", reason: "no answer within the ring timeout"}
		case <-cancelled:
			res = ringResult{status: 487, by: "caller", reason: "cancelled by the caller", silent: true}
		case <-callerGone:
			res = ringResult{status: 500, by: "pbx", reason: "the caller's transaction failed: " + errString(c.aTx.Err()), silent: true}
		case <-c.done:
			res = ringResult{status: 487, by: "pbx", reason: "the call ended"}
		case <-stopped:
			res = r.stopped()
		case <-c.e.quit:
			res = ringResult{status: 503, by: "pbx", reason: "pbx shutting down"}
		}
		r.stop(nil)
		return res
	}
	return r.final()
}

// stopped is the result of a ring whose context ended: Hangup, or routing gave up.
func (r *ringer) stopped() ringResult {
	r.c.mu.Lock()
	why := r.c.abort
	r.c.mu.Unlock()
	if why == "" {
		why = "routing gave up: " + r.opt.ctx.Err().Error()
	}
	return ringResult{status: 487, by: "pbx", reason: why}
}

// onEvent takes one leg's news; it reports the ring's result once a leg answered.
func (r *ringer) onEvent(ev legEvent) (ringResult, bool) {
	if ev.err != nil || ev.res != nil && !ev.res.IsProvisional() && !ev.res.IsSuccess() {
		ev.l.failed.Store(true) // no longer ringing: not to be picked up
		r.legEnded(ev.l)
	}
	switch res := ev.res; {
	case ev.err != nil:
		r.pending--
		r.out.ended(ev.err)
	case !usable(res):
		if !res.IsProvisional() {
			// A final answer the PBX cannot act on (no To, From, Call-ID): an invalid response
			// from downstream, 502 (RFC 3261 §21.5.3).
			r.c.log.Warn("unusable answer from a callee", "status", res.StatusCode, "src", res.Source())
			r.pending--
			r.out.answered(502)
		}
	case res.IsProvisional():
		r.onProvisional(res)
	case res.IsSuccess():
		return r.onAnswer(ev.l, res), true
	case res.StatusCode/100 == 3:
		r.pending--
		r.onRedirect(res)
	default:
		r.pending--
		r.out.answered(res.StatusCode)
	}
	return ringResult{}, false
}

// onProvisional relays a callee's 180 or 183 to the caller: each code once, and again whenever it
// brings a session description (early media).
func (r *ringer) onProvisional(res *sip.Response) {
	code := res.StatusCode
	if !r.opt.caller || code == 100 || (r.relayed[code] && len(res.Body()) == 0) {
		return
	}
	c := r.c
	if !r.relayed[180] && !r.relayed[183] {
		c.emit(CallRinging, code)
	}
	r.relayed[code] = true
	body, err := c.sdpFrom(false, res.Body())
	if err != nil {
		c.log.Info("early media refused", "status", code, "error", err)
		body = nil
	}
	c.e.respond(c.aReq, c.aTx, code, c.a.localTag, c.stampSDP(c.a, body), c.a.contact)
}

// onAnswer takes the first 2xx: the leg's dialog is established and ACKed, the others are
// cancelled.
func (r *ringer) onAnswer(l *leg, res *sip.Response) ringResult {
	l.won.Store(true)
	l.establish(res)
	if r.opt.caller && len(r.o.body) == 0 {
		// Late offer (RFC 3264 §5, RFC 3261 §13.2.1): the callee's 2xx carries the offer and our
		// ACK must carry the caller's answer, which comes in the caller's ACK. answer() sends it.
		l.ackHeld.Store(true)
	} else {
		l.ack()
	}
	r.stop(l)
	return ringResult{leg: l, res: res, status: 200}
}

// onRedirect follows a callee's 3xx, passes it on (PassRedirects), or counts it as 480 where
// redirects are not followed (transfers).
func (r *ringer) onRedirect(res *sip.Response) {
	switch {
	case !r.opt.follow:
		r.out.answered(480)
	case r.c.e.cfg.PassRedirects:
		r.out.answered(res.StatusCode)
		if r.redirects == nil {
			for _, h := range res.GetHeaders("Contact") {
				r.redirects = append(r.redirects, sip.NewHeader("Contact", h.Value()))
			}
		}
	case r.follow(res) == 0:
		r.out.answered(480) // nowhere new to go; the callee's Contacts stay hidden
	}
}

// follow starts a leg to each Contact of a 3xx not tried before, at most maxRedirects in all
// (RFC 3261 §8.1.3.4). It returns how many legs it started.
func (r *ringer) follow(res *sip.Response) int {
	started := 0
	for _, h := range res.GetHeaders("Contact") {
		ch, ok := h.(*sip.ContactHeader)
		if !ok || ch.Address.Wildcard || (ch.Address.Scheme != "sip" && ch.Address.Scheme != "sips") {
			continue
		}
		uri := *ch.Address.Clone()
		key := uri.String()
		if r.tried[key] || r.hops >= maxRedirects {
			continue
		}
		r.tried[key] = true
		r.hops++
		transport := URITransport(uri)
		r.c.log.Info("following redirect", "status", res.StatusCode, "target", key)
		if r.start(Target{URI: uri, Transport: transport}) {
			started++
		}
	}
	return started
}

// final is the result once every leg failed.
func (r *ringer) final() ringResult {
	switch final := r.out.final(); {
	case len(r.out.codes) == 0:
		return ringResult{status: final, by: "pbx", reason: "no contact of the callee could be reached"}
	case final/100 == 3:
		return ringResult{status: final, by: "callee", reason: "redirected", headers: r.redirects}
	case final == 403:
		return ringResult{status: final, by: "callee", reason: "the callee demanded credentials"}
	default:
		return ringResult{status: final, by: "callee", reason: "no contact answered"}
	}
}

// usable reports whether a callee's response has what the PBX needs to act on it.
func usable(res *sip.Response) bool {
	return res.To() != nil && res.From() != nil && res.CallID() != nil && res.CSeq() != nil
}
