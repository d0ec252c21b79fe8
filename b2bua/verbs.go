package b2bua

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/internal/sipx"
)

// The verbs of a call being routed: what a dialplan (Go or Lua) does with a new call. Each one
// either answers the caller (Connect when a callee answers, Reject, Redirect), tells it how things
// go (Ringing, Progress, Provisional) or tries something and reports back (a Connect that no
// callee answered leaves the caller waiting, so routing can try elsewhere).

// minSE is the smallest session interval RFC 4028 §4 allows, sent with a 422 from routing.
const minSE = 90

// ConnectOptions say how Connect rings.
type ConnectOptions struct {
	// Timeout is how long the callees ring before the attempt fails with 480. Zero uses the
	// engine's RingTimeout.
	Timeout time.Duration
	// Headers are added to every B-leg INVITE of this attempt (after those of SetHeader).
	Headers []sip.Header
	// CallerID replaces the user part of the From header the callees see; CallerName its display
	// name. Empty keeps the caller's (or a trunk's caller ID, Target.FromUser).
	CallerID, CallerName string
	// Trunk, when set, sends every destination out through the named trunk (Config.ResolveTrunk):
	// each must then be a number, dialled at the trunk's provider.
	Trunk string
}

// Result is what a Connect (or Forward) came to.
type Result struct {
	Answered bool   // a callee answered: the call is connected and goes on without routing
	Status   int    // 200 when answered; otherwise the final status the attempt came to
	Reason   string // why, in words
}

// ID returns the caller's Call-ID. It names the call for its whole life, whoever the caller's
// side is connected to after a transfer.
func (c *Call) ID() string { return c.id }

// Request returns the caller's INVITE. It must not be modified.
func (c *Call) Request() *sip.Request { return c.aReq }

// User returns the extension that authenticated the call, or "" when it came from a trusted
// network without credentials.
func (c *Call) User() string { return c.user }

// Callee returns the dialled user part of the Request-URI.
func (c *Call) Callee() string { return c.callee }

// Engine returns the engine that runs the call.
func (c *Call) Engine() *Engine { return c.e }

// Answered reports whether a callee answered the call.
func (c *Call) Answered() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.rec.Answer.IsZero()
}

// Decided reports whether the caller has its final answer (or the call has ended).
func (c *Call) Decided() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state.decided()
}

// SetVar stores a per-call variable: routing sets them, the hang-up handler reads them.
func (c *Call) SetVar(name, value string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.vars == nil {
		c.vars = map[string]string{}
	}
	c.vars[name] = value
}

// Var returns a per-call variable set with SetVar.
func (c *Call) Var(name string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.vars[name]
	return v, ok
}

// SetHeader adds a header to every B-leg INVITE sent from now on. name must be a SIP token and
// value must not contain line breaks; the headers that make up the dialog cannot be set.
func (c *Call) SetHeader(name, value string) error {
	h, err := NewHeader(name, value)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.setup.headers = append(c.setup.headers, h)
	c.mu.Unlock()
	return nil
}

// OnEnd registers f to run once with the call's record after the call has ended. f runs on the
// goroutine that ended the call and must not block.
func (c *Call) OnEnd(f func(Record)) {
	c.mu.Lock()
	if c.state != stateEnded {
		c.onEnd = append(c.onEnd, f)
		c.mu.Unlock()
		return
	}
	rec := c.rec
	c.mu.Unlock()
	f(rec)
}

// Connect rings dests in parallel (forking to every contact of each) and waits until one
// answers, all fail, the ring timeout passes, the caller cancels or ctx ends. A destination is
// an extension number or a sip:/sips: URI; the engine's Resolve finds its contacts.
//
// When a callee answers, the caller is answered too (and its ACK awaited): the call is
// connected and Result.Answered is true. Otherwise the caller has not been answered yet and
// routing can go on; Result.Status says why the attempt failed (486 busy, 480 no answer or not
// registered, 404 unknown, ...). A caller that cancelled gets 487 and the call has ended.
func (c *Call) Connect(ctx context.Context, dests []string, opts ConnectOptions) (Result, error) {
	if c.Decided() && !c.InApplication() {
		return c.endedResult(), ErrDecided
	}
	if len(dests) == 0 {
		return Result{}, errors.New("b2bua: connect needs a destination")
	}
	var targets []Target
	var out outcome
	why := "no destination can be called"
	for _, d := range dests {
		ts, err := c.resolve(ctx, d, opts.Trunk)
		var se *StatusError
		switch {
		case isBadDestination(err):
			return Result{}, err
		case errors.As(err, &se):
			c.log.Debug("destination cannot be called", "dest", d, "status", se.Code, "reason", se.Reason)
			out.answered(se.Code)
			if len(dests) == 1 {
				why = se.Reason
			}
		case err != nil:
			c.log.Warn("destination not resolved", "dest", d, "error", err)
			out.answered(500)
		default:
			targets = append(targets, ts...)
		}
	}
	if len(targets) == 0 {
		r := ringResult{status: out.final(), by: "pbx", reason: why}
		c.remember(r)
		return Result{Status: r.status, Reason: r.reason}, nil
	}
	return c.Dial(ctx, targets, opts)
}

// badDestination is a destination routing named wrongly: Connect returns it, rather than
// counting it as a destination that cannot be called.
type badDestination struct{ err error }

func (b badDestination) Error() string { return b.err.Error() }
func (b badDestination) Unwrap() error { return b.err }

func isBadDestination(err error) bool { return errors.As(err, new(badDestination)) }

// resolve finds the contacts of one destination of Connect, through trunk when one is named.
func (c *Call) resolve(ctx context.Context, dest, trunk string) ([]Target, error) {
	uri, err := ParseDestination(dest)
	switch {
	case err != nil:
		return nil, badDestination{err}
	case trunk != "" && uri.Host != "":
		return nil, badDestination{fmt.Errorf("b2bua: %q goes out through trunk %q: want a number, not a URI", dest, trunk)}
	case trunk != "" && c.e.cfg.ResolveTrunk == nil:
		return nil, badDestination{fmt.Errorf("b2bua: the engine has no ResolveTrunk for trunk %q", trunk)}
	case trunk != "":
		ts, err := c.e.cfg.ResolveTrunk(ctx, trunk, uri.User)
		if errors.Is(err, ErrUnknownTrunk) {
			err = badDestination{err}
		}
		return ts, err
	case c.e.cfg.Resolve == nil:
		return nil, badDestination{errors.New("b2bua: the engine has no Resolve to find destinations")}
	}
	return c.e.cfg.Resolve(ctx, uri)
}

// Dial is Connect to contacts already resolved.
func (c *Call) Dial(ctx context.Context, targets []Target, opts ConnectOptions) (Result, error) {
	if c.InApplication() {
		return c.dialAnswered(ctx, targets, opts)
	}
	if c.Decided() {
		return c.endedResult(), ErrDecided
	}
	if len(targets) == 0 {
		return Result{}, errors.New("b2bua: dial needs a target")
	}
	if ctx.Err() != nil {
		return Result{Status: 487, Reason: "routing gave up: " + ctx.Err().Error()}, nil
	}
	c.mu.Lock()
	refusal := c.setup.refusal
	c.mu.Unlock()
	if refusal != nil {
		c.remember(*refusal)
		return Result{Status: refusal.status, Reason: refusal.reason}, nil
	}
	o := c.legOrigin(targets, opts)
	r := c.ring(targets, o, ringOptions{caller: true, follow: true, ctx: ctx, timeout: opts.Timeout})
	switch {
	case r.pickup != nil && c.answerPickup(r.pickup):
		return Result{Answered: true, Status: 200, Reason: "picked up"}, nil
	case r.pickup != nil:
		return c.endedResult(), nil
	case r.leg != nil && c.answer(r.leg, r.res):
		return Result{Answered: true, Status: 200, Reason: "answered"}, nil
	case r.leg != nil:
		return c.endedResult(), nil
	case r.silent:
		c.finish(r.status, r.by, r.reason)
		return Result{Status: r.status, Reason: r.reason}, nil
	}
	c.remember(r)
	return Result{Status: r.status, Reason: r.reason}, nil
}

// legOrigin is whom the B-legs of a Connect to targets are from, with the headers they carry;
// the record names the callee.
func (c *Call) legOrigin(targets []Target, opts ConnectOptions) legOrigin {
	o := c.origin()
	if opts.CallerID != "" {
		o.fromUser, o.callerIDSet = opts.CallerID, true
	}
	if opts.CallerName != "" {
		o.display = opts.CallerName
	}
	c.mu.Lock()
	o.extra = append(append([]sip.Header(nil), c.setup.headers...), opts.Headers...)
	o.extra = append(o.extra, c.setup.fwd.headers(c.callee, c.host())...)
	if c.state == stateSetup {
		c.rec.Callee = partyOf(targets)
	}
	c.mu.Unlock()
	return o
}

// SetFallback sets the final status (400-699) the caller gets when routing ends without deciding
// the call; each failed Connect sets it too, to its own status.
func (c *Call) SetFallback(status int, reason string) {
	if status < 400 || status > 699 {
		return
	}
	c.remember(ringResult{status: status, by: "pbx", reason: reason})
}

// Fallback returns the final status the caller gets when routing ends now without deciding the
// call: that of the last failed attempt (Connect, Forward, Divert) or of SetFallback. ok is false
// while routing has tried nothing; default routing (dialplan.Default) takes only such calls.
func (c *Call) Fallback() (status int, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.setup.last == nil {
		return 0, false
	}
	return c.setup.last.status, true
}

// remember keeps a failed attempt for conclude.
func (c *Call) remember(r ringResult) {
	c.mu.Lock()
	c.setup.last = &r
	c.mu.Unlock()
}

// partyOf names the callee of a ring for the record: the first extension among targets, else the
// user of the first URI.
func partyOf(targets []Target) string {
	for _, t := range targets {
		if t.Ext != "" {
			return t.Ext
		}
	}
	return targets[0].URI.User
}

// endedResult describes a call that is already decided.
func (c *Call) endedResult() Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.rec.Answer.IsZero() {
		return Result{Answered: true, Status: 200, Reason: "answered"}
	}
	if c.state == stateEnded {
		return Result{Status: c.rec.Status, Reason: c.rec.Reason}
	}
	if c.abort != "" {
		return Result{Status: 487, Reason: c.abort}
	}
	return Result{Status: 500, Reason: "the caller already has its final answer"}
}

// Ringing sends 180 Ringing to the caller.
func (c *Call) Ringing() error { return c.Provisional(180, "") }

// Progress sends 183 Session Progress to the caller.
func (c *Call) Progress() error { return c.Provisional(183, "") }

// Provisional sends a provisional response (101-199) to the caller: 180, 181 Call Is Being
// Forwarded, 182 Queued, 183, or another. phrase "" is the IANA reason phrase.
func (c *Call) Provisional(code int, phrase string, hdrs ...sip.Header) error {
	if code <= 100 || code > 199 {
		return fmt.Errorf("b2bua: %d is not a provisional status (101-199)", code)
	}
	if c.Decided() {
		return ErrDecided
	}
	phrase, err := phraseFor(code, phrase)
	if err != nil {
		return err
	}
	if code == 180 || code == 183 {
		c.emit(CallRinging, code)
	}
	_, err = c.e.respondPhrase(c.aReq, c.serverTx(), code, phrase, c.a.localTag, nil, append(hdrs, c.a.contact)...)
	return err
}

// Reject answers the caller with a final status 400-699 and ends the call. phrase "" is the IANA
// reason phrase. Where the status needs a header the engine adds it: Allow for 405, Accept for
// 415, Min-SE for 422.
func (c *Call) Reject(code int, phrase string, hdrs ...sip.Header) error {
	if code < 400 || code > 699 {
		return fmt.Errorf("b2bua: reject needs a status 400-699, not %d", code)
	}
	phrase, err := phraseFor(code, phrase)
	if err != nil {
		return err
	}
	switch code {
	case 405:
		hdrs = append(hdrs, sip.NewHeader("Allow", sipx.Allow))
	case 415:
		hdrs = append(hdrs, sip.NewHeader("Accept", sipx.ContentTypeSDP))
	case 422:
		hdrs = append(hdrs, sip.NewHeader("Min-SE", strconv.Itoa(minSE)))
	}
	by, why := "pbx", "routing rejected the call"
	c.mu.Lock()
	if last := c.setup.last; last != nil && last.status == code {
		// Routing passed on what its last attempt came to: the callee's answer (the callee ended
		// the call), or the PBX's own reason (the ring timeout, a forwarding loop, ...).
		by, why = last.by, last.reason
	}
	c.mu.Unlock()
	return c.final(code, phrase, by, why, hdrs...)
}

// Redirect answers the caller with a 3xx (300, 301, 302, 305 or 380) whose Contact headers are
// the contacts given (sip:, sips: or tel: URIs), and ends the call.
func (c *Call) Redirect(code int, contacts []string) error {
	switch code {
	case 300, 301, 302, 305, 380:
	default:
		return fmt.Errorf("b2bua: redirect needs 300, 301, 302, 305 or 380, not %d", code)
	}
	if len(contacts) == 0 && code != 380 {
		return fmt.Errorf("b2bua: redirect %d needs at least one contact", code)
	}
	hdrs := make([]sip.Header, 0, len(contacts))
	for _, ct := range contacts {
		var uri sip.Uri
		lower := strings.ToLower(ct)
		ok := strings.HasPrefix(lower, "sip:") || strings.HasPrefix(lower, "sips:") || strings.HasPrefix(lower, "tel:")
		if !ok || strings.ContainsAny(ct, "<>\" \r\n") || sip.ParseUri(ct, &uri) != nil {
			return fmt.Errorf("b2bua: redirect contact %q is not a sip:, sips: or tel: URI", ct)
		}
		hdrs = append(hdrs, sip.NewHeader("Contact", "<"+ct+">"))
	}
	return c.final(code, sipx.Reason(code), "pbx", "routing redirected the call", hdrs...)
}

// final sends a final non-2xx answer chosen by routing.
func (c *Call) final(code int, phrase, by, why string, hdrs ...sip.Header) error {
	if !c.refuse(code, phrase, by, why, hdrs...) {
		return ErrDecided
	}
	return nil
}

// phraseFor checks a reason phrase given by routing, or picks the IANA one.
func phraseFor(code int, phrase string) (string, error) {
	if phrase == "" {
		return sipx.Reason(code), nil
	}
	if len(phrase) > 200 || strings.ContainsAny(phrase, "\r\n\x00") {
		return "", fmt.Errorf("b2bua: reason phrase %q is not usable", phrase)
	}
	return phrase, nil
}

// ParseDestination turns a destination as routing names it, an extension number or a sip:/sips:
// URI, into a URI. An extension number becomes a URI without host.
func ParseDestination(dest string) (sip.Uri, error) {
	lower := strings.ToLower(dest)
	if strings.HasPrefix(lower, "sip:") || strings.HasPrefix(lower, "sips:") {
		var uri sip.Uri
		if strings.ContainsAny(dest, "<>\" \r\n") || sip.ParseUri(dest, &uri) != nil || uri.Host == "" {
			return sip.Uri{}, fmt.Errorf("b2bua: destination %q is not a valid SIP URI", dest)
		}
		return uri, nil
	}
	if dest == "" || len(dest) > 64 || !isNumber(dest) {
		return sip.Uri{}, fmt.Errorf("b2bua: destination %q is neither an extension number nor a sip: URI", dest)
	}
	return sip.Uri{Scheme: "sip", User: dest}, nil
}

// isNumber reports whether s is a usable extension number: digits, letters, '.', '-', '_', '+',
// '*' and '#'.
func isNumber(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || strings.IndexByte(".-_+*#", b) >= 0) {
			return false
		}
	}
	return true
}
