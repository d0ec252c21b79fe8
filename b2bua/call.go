package b2bua

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Target is one place to ring: a registered contact of the callee.
type Target struct {
	URI       sip.Uri // the contact: Request-URI of the B-leg
	Dest      string  // "ip:port" to send to, where the phone registered from (RFC 3581); "" resolves URI
	Transport string  // "udp", "tcp" or "tls"
	Ext       string  // the extension the contact belongs to, "" for a foreign destination
	// Auth, when set, answers the callee's first 401 or 407 (a trunk's provider).
	Auth *Credentials
	// FromUser, when set, is the user part of the leg's From (a trunk's caller ID), unless the
	// Connect's options name a caller ID of their own.
	FromUser string
	// Domain, when set, is the host of the leg's From and To URIs (a trunk's provider), in place
	// of the PBX's.
	Domain string
	// Headers are added to this target's INVITE only (pbx names the contact to ring when it
	// sends the call through the node that holds the callee's registration).
	Headers []sip.Header
}

// Call is one caller's dialog (the A-leg) and the dialogs the PBX opened toward the callee's
// contacts (B-legs; the one that answered stays). Its life is the state machine in state.go.
type Call struct {
	e        *Engine
	log      *slog.Logger
	id       string // the caller's Call-ID: the call's name in logs, events and its record
	aReq     *sip.Request
	aTx      sip.ServerTransaction
	callee   string // the dialled user part
	user     string // the authenticated extension, "" for a trusted source
	ctx      context.Context
	stop     context.CancelFunc
	arrivals *arrivals

	mu        sync.Mutex
	state     callState
	abort     string      // why Hangup stopped the call before it was answered
	a         *dialogSide // the caller's dialog, our side of it (a transfer may put another party here)
	winner    *leg        // the callee's side once answered
	setup     setupState
	media     callMedia
	re        reinviteState
	session   *time.Timer // RFC 4028: fires when nobody refreshed the session in time
	vars      map[string]string
	onEnd     []func(Record)
	rec       Record
	seg       segment    // the two parties talking now
	parked    *parkState // the call's place in a park slot while one side is parked
	recording recordingState

	acked     signal // the caller's ACK of our 2xx
	cancelled signal // the caller's CANCEL
	done      chan struct{}
	hangOnce  sync.Once
}

// segment is the pair of parties the call connects now, and since when.
type segment struct {
	caller, callee string
	start          time.Time // zero while no pair talks
}

// setupState is what routing has tried while the caller waits.
type setupState struct {
	last    *ringResult  // the last attempt that failed, for conclude
	refusal *ringResult  // the caller's offer cannot be relayed: every Connect ends so
	headers []sip.Header // added to every B-leg (SetHeader)
	legs    []*leg       // every B-leg rung for the caller, for Hangup while ringing
	fwd     forwarding   // the forwards so far (Divert)
	ring    *ringer      // the caller's ring in progress, for pickups
	// pickerAck is fired by the ACK of the picker's 200 once the call was picked up.
	pickerAck *signal
}

// signal is closed once, by whoever sees the event first.
type signal struct {
	once sync.Once
	ch   chan struct{}
}

func newSignal() signal { return signal{ch: make(chan struct{})} }

func (s *signal) fire() { s.once.Do(func() { close(s.ch) }) }

func (s *signal) fired() bool {
	select {
	case <-s.ch:
		return true
	default:
		return false
	}
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
// Hangup is called. An INVITE with a Replaces header (RFC 3891) naming a dialog of a call in
// progress takes that dialog's place instead of being routed.
func (e *Engine) Handle(req *sip.Request, tx sip.ServerTransaction, user string, route RouteFunc) *Call {
	c := e.newCall(req, tx, user)
	defer c.stop()
	defer c.releaseTx()
	if !e.admit(c) {
		e.respond(req, tx, 503, c.a.localTag, nil, sip.NewHeader("Retry-After", "5"))
		c.finish(503, "pbx", "shutting down")
		return c
	}
	defer e.active.Done()
	// sipgo answers a matching CANCEL itself (200, then 487 for the INVITE); OnCancel tells us at
	// once, long before the transaction ends.
	tx.OnCancel(func(*sip.Request) {
		c.cancelled.fire()
		c.stop()
	})
	e.respond(req, tx, 100, "", nil)
	if req.GetHeader("Replaces") != nil {
		c.takeOver()
		return c
	}
	c.emit(CallNew, 0)
	if e.cfg.Media != nil && !c.startMedia() {
		return c
	}
	c.conclude(c.route(route))
	return c
}

// newCall builds the call of a caller's INVITE: our side of its dialog and its record.
func (e *Engine) newCall(req *sip.Request, tx sip.ServerTransaction, user string) *Call {
	c := &Call{
		e: e, id: req.CallID().Value(), aReq: req, aTx: tx, callee: req.Recipient.User, user: user,
		arrivals: newArrivals(), acked: newSignal(), cancelled: newSignal(), done: make(chan struct{}),
		log: callLogger(e.log, req.CallID().Value()),
	}
	c.ctx, c.stop = context.WithCancel(context.Background())
	fromTag, _ := req.From().Params.Get("tag")
	host := e.cfg.Host
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = req.Recipient.Host
	}
	transport := strings.ToLower(req.Transport())
	c.a = &dialogSide{
		callID: c.id, localURI: *req.To().Address.Clone(), localTag: sip.GenerateTagN(16),
		remoteURI: *req.From().Address.Clone(), remoteTag: fromTag,
		routes: routeSet(req.GetHeaders("Record-Route"), false), dest: req.Source(),
		transport: transport,
		contact:   e.contacts.get(host, e.cfg.contactPort(transport), transport, strings.EqualFold(req.Recipient.Scheme, "sips")),
	}
	if t, ok := remoteTargetOf(req); ok {
		c.a.target = t
	} else {
		c.a.target = *req.From().Address.Clone()
	}
	c.media.offer = req.Body()
	c.rec = Record{CallID: c.id, Caller: req.From().Address.User, Dialled: c.callee, Callee: c.callee,
		Source: req.Source(), Start: time.Now()}
	return c
}

// releaseTx lets go of the caller's INVITE server transaction (and the responses it keeps for
// retransmission) once the caller acknowledged our 2xx and Handle is done: an answered call that
// is held for hours keeps no transaction. A refused call keeps it: its final answer may still be
// on its way from another goroutine (Hangup).
//
// c.aTx is therefore read without c.mu only on Handle's goroutine (routing and the verbs it
// calls); elsewhere through serverTx.
func (c *Call) releaseTx() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.acked.fired() {
		c.aTx = nil
	}
}

// serverTx returns the caller's INVITE server transaction, nil once released (releaseTx).
func (c *Call) serverTx() sip.ServerTransaction {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.aTx
}

// host is the PBX's host as the caller addressed it: the host of the PBX's Contact.
func (c *Call) host() string { return c.a.contact.Address.Host }

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
	decided, last, abort := c.state.decided(), c.setup.last, c.abort
	app := c.state == stateApplication
	c.mu.Unlock()
	switch {
	case app:
		// The PBX answered and routing is over: like the end of an Asterisk dialplan, that hangs
		// the caller up.
		if err != nil {
			c.log.Error("routing failed after the pbx answered", "error", err)
		}
		c.hangup(true, false, "pbx", "the dialplan ended")
	case decided:
	case c.cancelled.fired():
		c.finish(487, "caller", "cancelled by the caller")
	case c.quitting():
		c.fail(503, "pbx", "pbx shutting down")
	case abort != "":
		c.fail(487, "pbx", abort)
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

func (c *Call) quitting() bool {
	select {
	case <-c.e.quit:
		return true
	default:
		return false
	}
}

// talking reports whether ext is a party of this call while it is bridged.
func (c *Call) talking(ext string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state.up() && (c.user == ext || c.rec.Caller == ext || c.winner != nil && c.winner.ext == ext)
}

// Done is closed when the call has ended.
func (c *Call) Done() <-chan struct{} { return c.done }

// Record returns the call's record so far (complete once Done is closed).
func (c *Call) Record() Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rec
}

// Err is nil while the call is up and after an answered call ended; for a call that ended without
// being answered it is a *FailedError.
func (c *Call) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateEnded || !c.rec.Answer.IsZero() {
		return nil
	}
	return &FailedError{Status: c.rec.Status, Reason: c.rec.Reason}
}

// DialogIDs returns the two dialogs of an answered call as "Call-ID;local-tag;remote-tag" seen
// from the PBX: the caller's and the callee's. Before the answer the callee's is empty.
func (c *Call) DialogIDs() (caller, callee string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	caller = c.a.id()
	if c.winner != nil {
		callee = c.winner.d.id()
	}
	return caller, callee
}
