package b2bua

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/internal/sipx"
)

// Target is one place to ring: a registered contact of the callee.
type Target struct {
	URI       sip.Uri // the contact: Request-URI of the B-leg
	Dest      string  // "ip:port" to send to, where the phone registered from (RFC 3581); "" resolves URI
	Transport string  // "udp" or "tcp"
	Ext       string  // the extension the contact belongs to, "" for a foreign destination
}

// Call is one caller's dialog (the A-leg) and the dialogs the PBX opened toward the callee's
// contacts (B-legs; the one that answered stays).
type Call struct {
	e       *Engine
	log     *slog.Logger
	aReq    *sip.Request
	aTx     sip.ServerTransaction
	a       dialogSide // the caller's dialog, our side of it
	contact *sip.ContactHeader
	callee  string // the dialled user part, for the record
	user    string // the authenticated extension, "" for a trusted source
	ctx     context.Context
	stop    context.CancelFunc

	mu         sync.Mutex
	decided    bool        // the caller has its final response, or the call is answered
	last       *ringResult // the last Connect that failed, for conclude
	headers    []sip.Header
	vars       map[string]string
	onEnd      []func(Record)
	aborted    string // why Hangup ended the call before it was answered
	media      MediaSession
	offer      []byte               // the caller's offer as the callees see it
	ackBody    []byte               // the body of the caller's ACK of our 2xx
	earlyMedia bool                 // the caller got the PBX's own 183 with SDP
	stopEarly  []context.CancelFunc // stop PBX audio playing to the caller
	refusal    *ringResult          // the caller's offer cannot be relayed: every Connect ends so
	legs       []*leg
	winner     *leg
	answered   bool
	ended      bool
	rec        Record
	// The re-INVITE in progress (either direction), 0 for none: another one meanwhile gets 491.
	// It is over at the ACK (CSeq reAckSeq) of the 2xx relayed for it, which closes reAck.
	reinviting, reGen uint64
	reAck             chan struct{}
	reAckSeq          uint32
	reFromA           bool        // the re-INVITE in progress came from the caller
	reAnswered        bool        // its 2xx has been relayed; only the ACK is missing
	session           *time.Timer // RFC 4028: fires when nobody refreshed the session in time
	sdpA, sdpB        []byte      // the latest session description of each side

	ack      chan struct{} // closed by the caller's ACK of our 2xx
	ackOnce  sync.Once
	cancel   chan struct{} // closed when the caller CANCELs
	cnclOnce sync.Once
	done     chan struct{} // closed when the call has ended
	hangOnce sync.Once
}

// leg is one INVITE toward one contact.
type leg struct {
	c                                 *Call
	inv                               *sip.Request
	tx                                sip.ClientTransaction
	d                                 dialogSide
	decided                           <-chan struct{} // closed once the setup this leg belongs to is decided
	ext                               string          // the extension called, if any
	won                               atomic.Bool     // this leg's 2xx was taken: later 2xx are retransmissions
	ackHeld                           atomic.Bool     // late offer: the ACK waits for the caller's answer
	ackBody                           []byte          // the answer the ACK carries (late offer), under c.mu
	mu                                sync.Mutex
	ringing, cancelWanted, cancelSent bool
}

// legOrigin says whom a B-leg is from and to, and what it offers.
type legOrigin struct {
	fromUser, display, toUser string
	body                      []byte       // the SDP offered
	headers                   *sip.Request // request whose chosen headers are copied, or nil
	extra                     []sip.Header // headers routing added
}

// origin is the caller's side of the call, for its B-legs.
func (c *Call) origin() legOrigin {
	return legOrigin{fromUser: c.aReq.From().Address.User, display: c.aReq.From().DisplayName,
		toUser: c.callee, body: c.offer, headers: c.aReq}
}

type legEvent struct {
	l   *leg
	res *sip.Response
	err error // the transaction ended without a final response
}

// Done is closed when the call has ended.
func (c *Call) Done() <-chan struct{} { return c.done }

// Record returns the call's record so far (complete once Done is closed).
func (c *Call) Record() Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rec
}

// RouteFunc decides what becomes of a new call by calling its verbs (Connect, Forward, Reject,
// Redirect, Ringing, Progress). ctx ends when the caller cancels, Hangup gives up on the call or
// the engine shuts down, and when Handle returns.
type RouteFunc func(ctx context.Context, c *Call) error

// Handle takes a caller's INVITE that passed authentication: it answers 100 Trying, lets route
// decide and returns when the call is decided: answered and acknowledged, or refused with a
// final response. It must be called from the request's handler, which owns tx until then. user
// is the authenticated extension ("" for a trusted source).
//
// When route returns without having answered or refused the caller, the caller gets the status
// of the last Connect that failed, or 500 when route returned an error, panicked or decided
// nothing. An answered call goes on after Handle returns, until either side sends BYE or
// Hangup is called.
func (e *Engine) Handle(req *sip.Request, tx sip.ServerTransaction, user string, route RouteFunc) *Call {
	c := &Call{
		e: e, aReq: req, aTx: tx, callee: req.Recipient.User, user: user,
		ack: make(chan struct{}), done: make(chan struct{}), cancel: make(chan struct{}),
		log: e.log.With("call_id", req.CallID().Value()),
	}
	c.ctx, c.stop = context.WithCancel(context.Background())
	defer c.stop()
	fromTag, _ := req.From().Params.Get("tag")
	host := e.cfg.Host
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = req.Recipient.Host
	}
	c.contact = &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", Host: host, Port: e.cfg.Port}}
	c.a = dialogSide{
		callID: req.CallID().Value(), localURI: *req.To().Address.Clone(), localTag: sip.GenerateTagN(16),
		remoteURI: *req.From().Address.Clone(), remoteTag: fromTag,
		routes: routeSet(req.GetHeaders("Record-Route"), false), dest: req.Source(),
		transport: strings.ToLower(req.Transport()),
	}
	if t, ok := remoteTargetOf(req); ok {
		c.a.target = t
	} else {
		c.a.target = *req.From().Address.Clone()
	}
	c.rec = Record{CallID: c.a.callID, Caller: req.From().Address.User, Callee: c.callee, Source: req.Source(), Start: time.Now()}

	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		e.respond(req, tx, 503, c.a.localTag, nil, sip.NewHeader("Retry-After", "5"))
		c.finish(503, "pbx", "shutting down")
		return c
	}
	e.calls[c] = struct{}{}
	e.active.Add(1)
	e.mu.Unlock()
	defer e.active.Done()

	// sipgo answers a matching CANCEL itself (200, then 487 for the INVITE); OnCancel tells us at
	// once, long before the transaction ends.
	tx.OnCancel(func(*sip.Request) {
		c.cnclOnce.Do(func() { close(c.cancel) })
		c.stop()
	})
	e.respond(req, tx, 100, "", nil)
	c.emit(CallNew, 0)
	c.offer = req.Body()
	if e.cfg.Media != nil {
		if !c.startMedia() {
			return c
		}
	}
	err := c.route(route)
	c.conclude(err)
	return c
}

// startMedia allocates the call's relay and rewrites the caller's offer; a call it cannot relay
// is refused (503 no port, 400 malformed SDP, 488 no allowed codec).
func (c *Call) startMedia() bool {
	m, err := c.e.cfg.Media.NewSession()
	if err != nil {
		code := mediaStatus(err)
		c.log.Warn("no media relay for the call", "status", code, "error", err)
		c.fail(code, "pbx", "media: "+err.Error(), sip.NewHeader("Retry-After", "5"))
		return false
	}
	c.mu.Lock()
	c.media = m
	c.mu.Unlock()
	m.OnDTMF(func(fromCaller bool, digit string) {
		side := "callee"
		if fromCaller {
			side = "caller"
		}
		c.emitWith(Event{Kind: CallDTMF, Digit: digit, Side: side})
	})
	offer, err := c.sdpFrom(true, c.aReq.Body())
	if code := mediaStatus(err); err != nil && code == 488 {
		// No allowed codec: routing still runs, and every attempt to connect comes to 488, so a
		// dialplan can answer 606 instead (or route to something that needs no media).
		c.log.Info("caller's offer has no allowed codec", "error", err)
		c.mu.Lock()
		c.refusal = &ringResult{status: 488, by: "pbx", reason: "media: " + err.Error()}
		c.last = c.refusal
		c.mu.Unlock()
		return true
	} else if err != nil {
		c.log.Info("caller's offer refused", "status", code, "error", err)
		c.fail(code, "pbx", "media: "+err.Error())
		return false
	}
	c.offer = offer
	return true
}

// route runs the route function, turning a panic into an error.
func (c *Call) route(route RouteFunc) (err error) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("panic while routing a call", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("b2bua: routing panicked: %v", r)
		}
	}()
	return route(c.ctx, c)
}

// conclude gives a call that routing left undecided its final response.
func (c *Call) conclude(err error) {
	c.mu.Lock()
	decided, last := c.decided || c.ended, c.last
	c.mu.Unlock()
	switch {
	case decided:
	case c.cancelled():
		c.finish(487, "caller", "cancelled by the caller")
	case c.quitting():
		c.fail(503, "pbx", "pbx shutting down")
	case c.abortedWhy() != "":
		c.fail(487, "pbx", c.abortedWhy())
	case err != nil:
		c.log.Error("routing failed", "error", err)
		c.fail(500, "pbx", "routing failed: "+err.Error())
	case last != nil:
		c.fail(last.status, last.by, last.reason, last.headers...)
	default:
		c.log.Warn("routing decided nothing: answering 500")
		c.fail(500, "pbx", "routing decided nothing")
	}
}

func (c *Call) cancelled() bool {
	select {
	case <-c.cancel:
		return true
	default:
		return false
	}
}

func (c *Call) abortedWhy() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.aborted
}

func (c *Call) quitting() bool {
	select {
	case <-c.e.quit:
		return true
	default:
		return false
	}
}

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
}

// ring sends one B-leg per target with o's offer and waits until one answers, all fail, the ring
// timeout passes, the call ends or the PBX shuts down.
func (c *Call) ring(targets []Target, o legOrigin, opt ringOptions) ringResult {
	e := c.e
	decided := make(chan struct{})
	defer close(decided) // from here on the legs handle late answers themselves
	events := make(chan legEvent)
	var out outcome
	var legs []*leg
	start := func(t Target) bool {
		l, err := c.startLeg(t, o, decided)
		if err != nil {
			c.log.Warn("b-leg not sent", "target", t.URI.String(), "dest", t.Dest, "error", err)
			out.ended(err)
			return false
		}
		legs = append(legs, l)
		if opt.caller {
			c.mu.Lock()
			c.legs = append(c.legs, l) // for Hangup while ringing
			c.mu.Unlock()
		}
		e.bg.Add(1)
		go l.read(events)
		return true
	}
	stop := func(keep *leg) {
		for _, l := range legs {
			if l != keep {
				l.cancel()
			}
		}
	}
	pending := 0
	tried := map[string]bool{}
	for _, t := range targets {
		tried[t.URI.String()] = true
		if start(t) {
			pending++
		}
	}
	var cancelled, callerGone <-chan struct{} // nil (never ready) unless this is call setup
	if opt.caller {
		cancelled, callerGone = c.cancel, c.aTx.Done()
	}
	var stopped <-chan struct{}
	if opt.ctx != nil {
		stopped = opt.ctx.Done()
	}
	timeout := e.cfg.RingTimeout
	if opt.timeout > 0 {
		timeout = opt.timeout
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	relayed := map[int]bool{}
	hops := 0
	var redirects []sip.Header // Contacts of the first 3xx, when 3xx answers are passed on
	for pending > 0 {
		select {
		case ev := <-events:
			code := 0
			if ev.res != nil {
				code = ev.res.StatusCode
			}
			switch {
			case ev.err != nil:
				pending--
				out.ended(ev.err)
			case !usable(ev.res):
				if !ev.res.IsProvisional() {
					// A final answer the PBX cannot act on (no To, From, Call-ID): an invalid
					// response from downstream, 502 (RFC 3261 §21.5.3).
					c.log.Warn("unusable answer from a callee", "status", code, "src", ev.res.Source())
					pending--
					out.answered(502)
				}
			case ev.res.IsProvisional():
				if opt.caller && code > 100 && (!relayed[code] || len(ev.res.Body()) > 0) {
					if !relayed[180] && !relayed[183] {
						c.emit(CallRinging, code)
					}
					relayed[code] = true
					// 180 and 183 reach the caller, 183 with its early-media SDP.
					body, err := c.sdpFrom(false, ev.res.Body())
					if err != nil {
						c.log.Info("early media refused", "status", code, "error", err)
						body = nil
					}
					e.respond(c.aReq, c.aTx, code, c.a.localTag, body, c.contact)
				}
			case ev.res.IsSuccess():
				ev.l.won.Store(true)
				ev.l.establish(ev.res)
				if opt.caller && len(o.body) == 0 {
					// Late offer (RFC 3264 §5, RFC 3261 §13.2.1): the callee's 2xx carries the
					// offer and our ACK must carry the caller's answer, which comes in the
					// caller's ACK. answer() sends it then.
					ev.l.ackHeld.Store(true)
				} else {
					ev.l.ack(ev.res)
				}
				stop(ev.l)
				return ringResult{leg: ev.l, res: ev.res, status: 200}
			case code/100 == 3 && opt.follow && e.cfg.PassRedirects:
				pending--
				out.answered(code)
				if redirects == nil {
					for _, h := range ev.res.GetHeaders("Contact") {
						redirects = append(redirects, sip.NewHeader("Contact", h.Value()))
					}
				}
			case code/100 == 3 && opt.follow:
				pending--
				n := c.redirect(ev.res, tried, &hops, start)
				pending += n
				if n == 0 {
					out.answered(480) // nowhere new to go; the callee's Contacts stay hidden
				}
			case code/100 == 3:
				pending--
				out.answered(480)
			default:
				pending--
				out.answered(code)
			}
		case <-timer.C:
			stop(nil)
			return ringResult{status: 480, by: "pbx", reason: "no answer within the ring timeout"}
		case <-cancelled:
			stop(nil)
			return ringResult{status: 487, by: "caller", reason: "cancelled by the caller", silent: true}
		case <-callerGone:
			stop(nil)
			return ringResult{status: 500, by: "pbx", reason: "the caller's transaction failed: " + errString(c.aTx.Err()), silent: true}
		case <-c.done:
			stop(nil)
			return ringResult{status: 487, by: "pbx", reason: "the call ended"}
		case <-stopped:
			stop(nil)
			if why := c.abortedWhy(); why != "" {
				return ringResult{status: 487, by: "pbx", reason: why}
			}
			return ringResult{status: 487, by: "pbx", reason: "routing gave up: " + opt.ctx.Err().Error()}
		case <-e.quit:
			stop(nil)
			return ringResult{status: 503, by: "pbx", reason: "pbx shutting down"}
		}
	}
	switch final := out.final(); {
	case len(out.codes) == 0:
		return ringResult{status: final, by: "pbx", reason: "no contact of the callee could be reached"}
	case final/100 == 3:
		return ringResult{status: final, by: "callee", reason: "redirected", headers: redirects}
	case final == 403:
		return ringResult{status: final, by: "callee", reason: "the callee demanded credentials"}
	default:
		return ringResult{status: final, by: "callee", reason: "no contact answered"}
	}
}

// maxRedirects bounds how many contacts from 3xx answers one call follows.
const maxRedirects = 5

// redirect follows a B-leg's 3xx: a new B-leg to each of its Contacts not tried before, at most
// maxRedirects in all (RFC 3261 §8.1.3.4). It returns how many legs it started.
func (c *Call) redirect(res *sip.Response, tried map[string]bool, hops *int, start func(Target) bool) int {
	started := 0
	for _, h := range res.GetHeaders("Contact") {
		ch, ok := h.(*sip.ContactHeader)
		if !ok || ch.Address.Wildcard || (ch.Address.Scheme != "sip" && ch.Address.Scheme != "sips") {
			continue
		}
		uri := *ch.Address.Clone()
		key := uri.String()
		if tried[key] || *hops >= maxRedirects {
			continue
		}
		tried[key] = true
		*hops++
		transport := "udp"
		if t, ok := uri.UriParams.Get("transport"); ok && t != "" {
			transport = strings.ToLower(t)
		}
		c.log.Info("following redirect", "status", res.StatusCode, "target", key)
		if start(Target{URI: uri, Transport: transport}) {
			started++
		}
	}
	return started
}

// fail sends the caller a final error and ends the call.
func (c *Call) fail(code int, by, reason string, hdrs ...sip.Header) {
	c.failWith(code, sipx.Reason(code), by, reason, hdrs...)
}

// failWith is fail with the reason phrase given.
func (c *Call) failWith(code int, phrase, by, reason string, hdrs ...sip.Header) {
	c.mu.Lock()
	c.decided = true
	c.mu.Unlock()
	if _, err := c.e.respondPhrase(c.aReq, c.aTx, code, phrase, c.a.localTag, nil, hdrs...); err != nil {
		c.log.Debug("final response not sent", "status", code, "error", err)
	}
	c.finish(code, by, reason)
}

// startLeg sends the INVITE toward one contact: a new dialog with its own Call-ID, tags, Via and
// Contact; only o's user, display name, SDP and chosen headers cross over.
func (c *Call) startLeg(t Target, o legOrigin, decided <-chan struct{}) (*leg, error) {
	e := c.e
	l := &leg{c: c, decided: decided, ext: t.Ext}
	l.d = dialogSide{
		callID:    sip.GenerateTagN(24) + "@pbxkit",
		localURI:  sip.Uri{Scheme: "sip", User: o.fromUser, Host: c.contact.Address.Host},
		localTag:  sip.GenerateTagN(16),
		remoteURI: sip.Uri{Scheme: "sip", User: o.toUser, Host: c.contact.Address.Host},
		target:    t.URI,
		dest:      t.Dest,
		transport: t.Transport,
		cseq:      1,
	}
	if l.d.transport == "" {
		l.d.transport = "udp"
	}
	inv := l.d.requestCSeq(sip.INVITE, 1, c.contact, e.cfg.BranchPrefix)
	if o.display != "" {
		inv.From().DisplayName = o.display
	}
	if mf := c.aReq.MaxForwards(); mf != nil && *mf > 0 {
		*inv.MaxForwards() = *mf - 1
	}
	inv.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY"))
	if o.headers != nil {
		copyTimerHeaders(o.headers, inv)
		for _, name := range e.cfg.CopyHeaders {
			for _, h := range o.headers.GetHeaders(name) {
				inv.AppendHeader(sip.NewHeader(h.Name(), h.Value()))
			}
		}
	}
	for _, h := range o.extra {
		inv.AppendHeader(h)
	}
	if len(o.body) > 0 {
		inv.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		inv.SetBody(o.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tx, err := e.clientFor(inv).TransactionRequest(ctx, inv)
	if err != nil {
		return nil, err
	}
	l.inv, l.tx = inv, tx
	return l, nil
}

// read passes the leg's responses to call setup while it runs, and deals with late ones itself.
func (l *leg) read(events chan<- legEvent) {
	defer l.c.e.bg.Done()
	defer l.c.e.recoverPanic("b-leg reader")
	for {
		select {
		case res := <-l.tx.Responses():
			if res.IsProvisional() {
				l.provisional()
			}
			select {
			case events <- legEvent{l: l, res: res}:
			case <-l.decided:
				l.late(res)
			}
		case <-l.tx.Done():
			select {
			case events <- legEvent{l: l, err: l.tx.Err()}:
			case <-l.decided:
			}
			return
		}
	}
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
	l.mu.Unlock()
	if send {
		l.c.e.sendAsync(cancelFor(l.inv), l.c.log, "cancel")
	}
}

// late handles a response after call setup was decided. A 2xx from the leg that won is a
// retransmission (our ACK was lost): ACK again. A 2xx from any other leg answered too late: ACK
// it and hang that dialog up at once (RFC 3261 §13.2.2.4, §16.7 step 5).
func (l *leg) late(res *sip.Response) {
	if !res.IsSuccess() || !usable(res) {
		return
	}
	if l.won.Load() {
		if !l.ackHeld.Load() {
			l.ack(res)
		}
		return
	}
	l.establish(res)
	l.ack(res)
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
func (l *leg) releaseAck(res *sip.Response, answer []byte) {
	if !l.ackHeld.Load() {
		return
	}
	l.c.mu.Lock()
	l.ackBody = answer
	l.c.mu.Unlock()
	l.ackHeld.Store(false)
	l.ack(res)
}

func (l *leg) ack(res *sip.Response) {
	l.c.mu.Lock()
	ack := l.d.requestCSeq(sip.ACK, l.inv.CSeq().SeqNo, l.c.contact, l.c.e.cfg.BranchPrefix)
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
func (l *leg) bye() {
	l.c.mu.Lock()
	bye := l.d.request(sip.BYE, l.c.contact, l.c.e.cfg.BranchPrefix)
	l.c.mu.Unlock()
	l.c.e.sendAsync(bye, l.c.log, "bye to callee")
}

// cancelLegs cancels every leg but keep.
func (c *Call) cancelLegs(keep *leg) {
	c.mu.Lock()
	legs := append([]*leg(nil), c.legs...)
	c.mu.Unlock()
	for _, l := range legs {
		if l != keep {
			l.cancel()
		}
	}
}

// answer connects the caller to the leg that answered (ring has ACKed it and cancelled the
// others): send 2xx to the caller and retransmit it until the caller's ACK (RFC 3261 §13.3.1.4,
// RFC 6026). Without an ACK within AckTimeout both sides are hung up.
func (c *Call) answer(l *leg, res *sip.Response) {
	e := c.e
	body, err := c.sdpFrom(false, res.Body())
	if err != nil {
		// The callee's answer cannot be relayed (no allowed codec, malformed): it answered, so it
		// is hung up, and the caller learns why.
		code := mediaStatus(err)
		c.log.Warn("callee's answer refused", "status", code, "error", err)
		l.releaseAck(res, nil)
		l.bye()
		c.fail(code, "pbx", "media: "+err.Error())
		return
	}
	c.stopAudio() // the caller hears the callee from now on, through the same port
	c.mu.Lock()
	c.winner, c.answered, c.decided = l, true, true
	c.rec.Answer = time.Now()
	c.sdpA, c.sdpB = c.offer, body
	c.mu.Unlock()
	// Before the caller gets its 200: after it, the caller's BYE can end the call at any moment.
	c.emit(CallAnswered, 200)
	e.addDialog(&l.d, c, false)
	e.addDialog(&c.a, c, true)

	ok, err := e.respond(c.aReq, c.aTx, 200, c.a.localTag, body, append(timerHeaders(res), c.contact)...)
	c.armSession(res)
	c.watchMedia()
	if err != nil {
		c.log.Warn("200 to caller not sent", "error", err)
		c.Hangup("could not answer the caller")
		return
	}
	c.log.Info("call answered", "callee", c.callee, "b_call_id", l.d.callID)
	acked := c.retransmitUntil(c.aTx, ok, c.ack)
	if l.ackHeld.Load() {
		var answer []byte
		if acked {
			c.mu.Lock()
			body := c.ackBody
			c.mu.Unlock()
			if answer, err = c.sdpFrom(true, body); err != nil {
				c.log.Warn("caller's answer in its ACK refused", "error", err)
				answer = nil
			}
			c.mu.Lock()
			c.sdpA = answer
			c.mu.Unlock()
		}
		l.releaseAck(res, answer)
	}
	if !acked {
		select {
		case <-c.done:
		case <-e.quit:
			c.Hangup("pbx shutdown") // also when Shutdown looked while the call was still ringing
		default:
			c.log.Warn("caller never acknowledged the 200: hanging up")
			c.Hangup("no ACK from the caller")
		}
	}
}

// inDialog handles a request the caller (aleg) or the callee sent inside the call's dialogs.
func (c *Call) inDialog(req *sip.Request, tx sip.ServerTransaction, aleg bool) {
	e := c.e
	switch req.Method {
	case sip.ACK:
		c.mu.Lock()
		if c.reAck != nil && req.CSeq().SeqNo == c.reAckSeq {
			close(c.reAck)
			c.reAck, c.reinviting = nil, 0 // the next re-INVITE may start at once
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		if aleg {
			c.ackOnce.Do(func() {
				c.mu.Lock()
				c.ackBody = req.Body() // a late offer's answer
				c.mu.Unlock()
				close(c.ack)
			})
		}
	case sip.BYE:
		e.respond(req, tx, 200, c.localTag(aleg), nil)
		by := "callee"
		if aleg {
			by = "caller"
		}
		c.hangup(!aleg, aleg, by, "BYE from the "+by)
	case sip.REFER:
		c.transfer(req, tx, aleg)
	default:
		c.relay(req, tx, aleg)
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

// relay passes a mid-call request (re-INVITE, INFO, UPDATE, OPTIONS) to the other side and its
// answer back.
func (c *Call) relay(req *sip.Request, tx sip.ServerTransaction, aleg bool) {
	e := c.e
	c.mu.Lock()
	w := c.winner
	tag, other := w.d.localTag, &c.a // answering the callee; passing on to the caller
	if aleg {
		tag, other = c.a.localTag, &w.d
	}
	c.mu.Unlock()
	if req.Method == sip.INVITE {
		c.reinvite(req, tx, aleg, tag, other)
		return
	}
	c.mu.Lock()
	out := other.request(req.Method, c.contact, e.cfg.BranchPrefix)
	c.mu.Unlock()
	if ct := req.ContentType(); ct != nil {
		out.AppendHeader(sip.NewHeader("Content-Type", ct.Value()))
	}
	copyTimerHeaders(req, out)
	body, err := c.sdpIn(req, aleg)
	if err != nil {
		c.log.Info("description refused", "method", req.Method, "error", err)
		e.respond(req, tx, mediaStatus(err), tag, nil)
		return
	}
	out.SetBody(body)
	ctx, cancel := context.WithTimeout(context.Background(), 32*time.Second)
	defer cancel()
	res, err := e.clientFor(out).Do(ctx, out)
	if err != nil {
		e.respond(req, tx, 408, tag, nil)
		return
	}
	answer, err := c.sdpOut(res, aleg)
	if err != nil {
		c.log.Info("answer refused", "method", req.Method, "error", err)
		e.respond(req, tx, mediaStatus(err), tag, nil)
		return
	}
	e.respond(req, tx, res.StatusCode, tag, answer, timerHeaders(res)...)
	if req.Method == sip.UPDATE && res.IsSuccess() {
		c.armSession(res) // an UPDATE refreshes the session too
	}
}

// reinvite passes a re-INVITE (hold, resume, codec change) into the other dialog. The other side's
// 2xx is ACKed by the PBX, and the 2xx relayed back is retransmitted until its ACK. While one
// re-INVITE is in progress another one, from either side, gets 491 Request Pending (RFC 3261
// §14.2): the sender retries after a random pause.
func (c *Call) reinvite(req *sip.Request, tx sip.ServerTransaction, aleg bool, tag string, other *dialogSide) {
	e := c.e
	c.mu.Lock()
	if c.reinviting != 0 {
		// The same side's next re-INVITE, after its previous one was answered, means that ACK was
		// lost or is still on its way (sipgo handles each message on a goroutine of its own): the
		// previous re-INVITE is over. Anything else crosses a re-INVITE in progress: glare.
		if !(c.reAnswered && c.reFromA == aleg && req.CSeq().SeqNo > c.reAckSeq) {
			c.mu.Unlock()
			c.log.Debug("re-INVITE while another is in progress: 491", "cseq", req.CSeq().SeqNo)
			e.respond(req, tx, 491, tag, nil)
			return
		}
		if c.reAck != nil {
			close(c.reAck)
			c.reAck = nil
		}
	}
	c.reGen++
	token := c.reGen
	c.reinviting, c.reFromA, c.reAnswered = token, aleg, false
	out := other.request(sip.INVITE, c.contact, e.cfg.BranchPrefix)
	c.mu.Unlock()
	c.log.Debug("re-INVITE passed on", "cseq", req.CSeq().SeqNo)
	defer func() {
		c.mu.Lock()
		if c.reinviting == token { // not already ended by its ACK, and no newer one started
			c.reinviting = 0
		}
		c.mu.Unlock()
	}()
	if ct := req.ContentType(); ct != nil {
		out.AppendHeader(sip.NewHeader("Content-Type", ct.Value()))
	}
	copyTimerHeaders(req, out)
	offer, err := c.sdpIn(req, aleg)
	if err != nil {
		c.log.Info("re-INVITE offer refused", "error", err)
		e.respond(req, tx, mediaStatus(err), tag, nil)
		return
	}
	out.SetBody(offer)
	res, err := c.inviteIn(other, out)
	switch {
	case errors.Is(err, errCallEnded):
		return
	case errors.Is(err, errNoAnswer):
		c.log.Debug("re-INVITE got no answer")
		e.respond(req, tx, 408, tag, nil)
		return
	case err != nil:
		c.log.Warn("re-INVITE not passed on", "error", err)
		e.respond(req, tx, 500, tag, nil)
		return
	case !res.IsSuccess():
		c.log.Debug("re-INVITE refused by the other side", "status", res.StatusCode)
		e.respond(req, tx, res.StatusCode, tag, nil)
		return
	}
	answer, err := c.sdpOut(res, aleg)
	if err != nil {
		// The other side took an offer whose answer cannot be relayed: the sender gets the error
		// (the other side keeps the new session until the next offer).
		c.log.Warn("re-INVITE answer refused", "error", err)
		e.respond(req, tx, mediaStatus(err), tag, nil)
		return
	}
	acked := make(chan struct{})
	c.mu.Lock()
	if len(offer) > 0 && len(answer) > 0 {
		if aleg {
			c.sdpA, c.sdpB = offer, answer
		} else {
			c.sdpB, c.sdpA = offer, answer
		}
	}
	c.reAck, c.reAckSeq, c.reAnswered = acked, req.CSeq().SeqNo, true
	c.mu.Unlock()
	ok, err := e.respond(req, tx, 200, tag, answer, append(timerHeaders(res), c.contact)...)
	if err != nil {
		c.log.Debug("re-INVITE answer not sent", "error", err)
		return
	}
	c.armSession(res) // a re-INVITE refreshes the session
	c.log.Debug("re-INVITE done", "acked", c.retransmitUntil(tx, ok, acked))
}

// Errors of inviteIn.
var (
	errNoAnswer  = errors.New("b2bua: no final answer")
	errCallEnded = errors.New("b2bua: call ended")
)

// inviteIn sends out, an INVITE built in dialog d, waits for its final answer and, for a 2xx,
// takes the peer's new Contact as d's target and ACKs it (RFC 3261 §13.2.2.4). It returns the
// final answer, errNoAnswer when the transaction ended without one, or errCallEnded.
func (c *Call) inviteIn(d *dialogSide, out *sip.Request) (*sip.Response, error) {
	e := c.e
	ctx, cancel := context.WithTimeout(context.Background(), 64*sip.T1)
	defer cancel()
	otx, err := e.clientFor(out).TransactionRequest(ctx, out)
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
			ack := d.requestCSeq(sip.ACK, out.CSeq().SeqNo, c.contact, e.cfg.BranchPrefix)
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

// Hangup ends an answered call from the PBX's side (BYE to both sides) or cancels one still
// ringing. reason goes into the record.
func (c *Call) Hangup(reason string) {
	c.hangup(true, true, "pbx", reason)
}

// hangup sends BYE to the sides asked for and ends the call.
func (c *Call) hangup(toCaller, toCallee bool, by, reason string) {
	c.mu.Lock()
	answered, w := c.answered, c.winner
	c.mu.Unlock()
	if !answered {
		// Still ringing: stop the legs; setup ends the call and answers the caller. This must not
		// use up hangOnce, or a 2xx that wins the race could never be hung up. Routing stops
		// too: its context ends, and conclude answers the caller.
		c.mu.Lock()
		c.aborted = reason
		c.mu.Unlock()
		c.stop()
		c.cancelLegs(nil)
		return
	}
	c.hangOnce.Do(func() {
		if toCallee {
			w.bye()
		}
		if toCaller {
			c.byeCaller()
		}
		c.finish(200, by, reason)
	})
}

func (c *Call) byeCaller() {
	c.mu.Lock()
	bye := c.a.request(sip.BYE, c.contact, c.e.cfg.BranchPrefix)
	c.mu.Unlock()
	c.e.sendAsync(bye, c.log, "bye to caller")
}

// finish records the end of the call once, removes its dialogs and writes its record.
func (c *Call) finish(status int, by, reason string) {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.ended = true
	if c.session != nil {
		c.session.Stop()
	}
	c.rec.End, c.rec.Status, c.rec.HangupBy, c.rec.Reason = time.Now(), status, by, reason
	if c.answered {
		c.rec.Status = 200
	}
	m := c.media
	c.mu.Unlock()
	c.stopAudio()
	if m != nil {
		// Closed before the record is taken, so the statistics are final.
		m.Close()
		c.mu.Lock()
		c.rec.MediaCaller, c.rec.MediaCallee = m.Stats()
		c.mu.Unlock()
	}
	c.mu.Lock()
	rec, onEnd := c.rec, c.onEnd
	c.mu.Unlock()
	c.e.removeDialogs(c)
	close(c.done)
	c.emit(CallEnded, 0)
	attrs := []any{"status", rec.Status, "disposition", rec.Disposition(), "hangup_by", by, "reason", reason}
	if m != nil {
		attrs = append(attrs, "caller_packets", rec.MediaCaller.Packets, "callee_packets", rec.MediaCallee.Packets,
			"caller_lost", rec.MediaCaller.Lost, "callee_lost", rec.MediaCallee.Lost)
	}
	c.log.Info("call ended", attrs...)
	if c.e.cdr != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.e.cdr.WriteRecord(ctx, rec); err != nil {
			c.log.Error("writing call record", "error", err)
		}
	}
	for _, f := range onEnd {
		f(rec)
	}
}

// usable reports whether a callee's response has what the PBX needs to act on it.
func usable(res *sip.Response) bool {
	return res.To() != nil && res.From() != nil && res.CallID() != nil && res.CSeq() != nil
}

func errString(err error) string {
	if err == nil {
		return "ended"
	}
	return err.Error()
}

// ErrCallFailed is the error of a call that ended without being answered; it wraps a
// *FailedError with the final status.
var ErrCallFailed = errors.New("b2bua: call not answered")

// FailedError says how an unanswered call ended.
type FailedError struct {
	Status int    // the final status the caller got
	Reason string // why, in words
}

func (e *FailedError) Error() string {
	return fmt.Sprintf("b2bua: call not answered: %d (%s)", e.Status, e.Reason)
}

// Is makes errors.Is(err, ErrCallFailed) true.
func (e *FailedError) Is(target error) bool { return target == ErrCallFailed }

// Err is nil while the call is up and after an answered call ended; for a call that ended without
// being answered it is a *FailedError.
func (c *Call) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ended || c.answered {
		return nil
	}
	return &FailedError{Status: c.rec.Status, Reason: c.rec.Reason}
}

// DialogIDs returns the two dialogs of an answered call as "Call-ID;local-tag;remote-tag" seen
// from the PBX: the caller's and the callee's. Before the answer the callee's is empty.
func (c *Call) DialogIDs() (caller, callee string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	caller = c.a.callID + ";" + c.a.localTag + ";" + c.a.remoteTag
	if c.winner != nil {
		callee = c.winner.d.callID + ";" + c.winner.d.localTag + ";" + c.winner.d.remoteTag
	}
	return caller, callee
}
