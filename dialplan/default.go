package dialplan

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua"
)

// Default is default routing: a call to an extension goes where the extension's stored settings
// say, with no script. For the dialled extension, in this order:
//
//   - a feature code (Features: directed and group pickup) or a park slot: the pickup or
//     retrieval, refused with its status (480 nothing ringing, 404 nothing parked) and a Warning;
//   - unknown: 404; disabled: 410 (Gone);
//   - forward always set: forwarded there (reason "unconditional");
//   - do not disturb: the busy path, forwarded to forward-on-busy (reason "do-not-disturb") or
//     486 (Busy Here);
//   - not registered: forwarded to forward-on-no-answer (reason "unavailable") or 480;
//   - recording on: the call is recorded once answered (b2bua.Call.RecordCall), as is every
//     call from an extension (the authenticated caller) with recording on;
//   - otherwise every registered phone rings for the extension's ring timeout (the PBX's when
//     0); busy (486, 600) goes to forward-on-busy ("user-busy"), no answer (the timeout, 480 or
//     408 from the phones) to forward-on-no-answer ("no-answer"); any other answer stands;
//   - when the extension's voicemail is on, a call that would be refused as busy (do not
//     disturb, 486, 600, or declined, 603) or not answered (not registered, 480, 408) with no
//     forward for that case goes to its mailbox (b2bua.Call.Voicemail) instead.
//
// A number that is no extension goes out through an outbound trunk when the Directory is a
// TrunkDirectory that has one for it (the trunk's prefix stripped); otherwise it is unknown (404).
//
// A forward to an extension routes the call again by that extension's settings, so forwards chain
// (at most b2bua.MaxDiversions; a loop ends with 482, see b2bua.Call.Divert). A forward to a sip:
// URI rings that URI. Each forward sends 181 to the caller, and the ringing that follows carries
// Diversion and History-Info.
//
// As a Handler (last in a Chain), Default routes only calls that the handlers before it left
// alone: a call for which routing tried something (a Connect that failed, say) keeps that
// attempt's status, as a handler that returns after a failed Connect expects.
type Default struct {
	// Directory is where extensions and their settings are looked up.
	Directory Directory
	// Timeout is how long phones ring when neither the extension nor the options say; 0 leaves
	// it to the call engine (b2bua.Config.RingTimeout).
	Timeout time.Duration
	// Warning, when set, turns the reason for a refusal into the value of a Warning header
	// (RFC 3261 §20.43) on it; pbx answers `399 <domain> "<reason>"`.
	Warning func(reason string) string
	// Features are the pickup codes default routing answers before looking the dialled number
	// up (features.go); park slots are always answered (a retrieval).
	Features Features
	// PauseCode, when set and the Directory is an AgentDirectory, is the number an agent dials
	// to pause itself in all its queues, or to unpause when paused in all (PauseToggle). The
	// caller is the authenticated extension, else (a trusted source) the From user part. The
	// answer is 603 "Agent Paused" or "Agent Unpaused" (nothing is answered, so nothing is
	// billed), 404 "Not A Queue Agent" for an extension in no queue.
	PauseCode string
}

var _ Handler = Default{}

// Handle routes the call to the dialled extension (Route) and refuses the caller with the status
// that came of it when no callee answered.
func (d Default) Handle(ctx context.Context, c *b2bua.Call) error {
	if _, tried := c.Fallback(); tried || c.Decided() {
		return nil
	}
	if handled, err := d.feature(ctx, c); handled {
		return err
	}
	if d.PauseCode != "" && c.Callee() == d.PauseCode {
		if ad, ok := d.Directory.(AgentDirectory); ok {
			return d.pauseToggle(ctx, c, ad)
		}
	}
	if err := d.recordCaller(ctx, c); err != nil {
		return err
	}
	r, err := d.Route(ctx, c, c.Callee(), b2bua.ConnectOptions{})
	if err != nil || c.Decided() || ctx.Err() != nil || r.Status < 400 || r.Status > 699 {
		return err // the engine answers: the error's 500, the last attempt's status, 487
	}
	var hdrs []sip.Header
	if d.Warning != nil && r.Reason != "" {
		hdrs = append(hdrs, sip.NewHeader("Warning", d.Warning(r.Reason)))
	}
	return c.Reject(r.Status, "", hdrs...)
}

// Route rings the extension number as its settings say, following its forwards, and returns
// what came of it. Like Connect it leaves the caller undecided when no callee answered, with the
// Result's status as the caller's answer should routing end there. An error is the Directory's,
// or a stored forward target that is neither an extension number nor a sip: URI.
func (d Default) Route(ctx context.Context, c *b2bua.Call, number string, opts b2bua.ConnectOptions) (b2bua.Result, error) {
	if number == "" {
		return refused(c, 404, "the Request-URI names no extension"), nil
	}
	for {
		next, reason, r, err := d.step(ctx, c, number, opts)
		if err != nil || next == "" {
			return r, err
		}
		if next, err = d.canonical(ctx, next); err != nil {
			return r, err
		}
		if r, ok, err := d.divert(c, next, reason); !ok {
			return r, err
		}
		if uri, err := b2bua.ParseDestination(next); err != nil || uri.Host != "" {
			return c.Connect(ctx, []string{next}, opts) // a sip: URI: rung as it is
		}
		number = next
	}
}

// Forward forwards the call to dests as Call.Forward does, except that a single extension number
// is routed by that extension's settings (Route): its own forwards are followed. This is what
// the Lua dialplan's call:forward does.
func (d Default) Forward(ctx context.Context, c *b2bua.Call, dests []string, opts b2bua.ForwardOptions) (b2bua.Result, error) {
	if len(dests) != 1 || d.Directory == nil || opts.Trunk != "" {
		return c.Forward(ctx, dests, opts)
	}
	dest, err := d.canonical(ctx, dests[0])
	if err != nil {
		return b2bua.Result{}, err
	}
	if uri, err := b2bua.ParseDestination(dest); err != nil || uri.Host != "" {
		return c.Forward(ctx, dests, opts)
	}
	if r, ok, err := d.divert(c, dest, opts.Reason); !ok {
		return r, err
	}
	return d.Route(ctx, c, dest, opts.ConnectOptions)
}

// canonical names a forward's destination as default routing routes it: a sip: URI that the
// Directory knows as an extension (one naming the PBX) becomes that extension's number, so that
// its settings apply and a loop through it is seen.
func (d Default) canonical(ctx context.Context, dest string) (string, error) {
	uri, err := b2bua.ParseDestination(dest)
	if err != nil || uri.Host == "" || d.Directory == nil {
		return dest, nil // a number, or no destination at all: Divert says so
	}
	ext, err := d.Directory.Extension(ctx, dest)
	if err != nil {
		return "", fmt.Errorf("dialplan: forward to %s: %w", dest, err)
	}
	if ext == nil {
		return dest, nil
	}
	return ext.Number, nil
}

// divert forwards the call to dest (Call.Divert). When it cannot go there, ok is false and r
// says why: a loop or too many forwards come as r's status, anything else (a destination that is
// no extension number or URI, a reason that is no token, a call already decided) as err too.
func (d Default) divert(c *b2bua.Call, dest, reason string) (r b2bua.Result, ok bool, err error) {
	err = c.Divert(dest, reason)
	var se *b2bua.StatusError
	switch {
	case err == nil:
		return b2bua.Result{}, true, nil
	case errors.As(err, &se):
		return b2bua.Result{Status: se.Code, Reason: se.Reason}, false, nil
	}
	return b2bua.Result{Status: 500, Reason: err.Error()}, false, err
}

// step applies one extension's settings: it returns where the call goes next and why, or (next
// "") the result of ringing the extension or of refusing it.
func (d Default) step(ctx context.Context, c *b2bua.Call, number string, opts b2bua.ConnectOptions) (next, reason string, r b2bua.Result, err error) {
	if d.Directory == nil {
		return "", "", b2bua.Result{}, errors.New("dialplan: default routing has no directory")
	}
	ext, err := d.Directory.Extension(ctx, number)
	switch {
	case err != nil:
		return "", "", b2bua.Result{}, fmt.Errorf("dialplan: extension %s: %w", number, err)
	case ext == nil:
		r, err := d.group(ctx, c, number, opts)
		return "", "", r, err
	case !ext.Enabled:
		return "", "", refused(c, 410, fmt.Sprintf("extension %s is disabled", number)), nil
	case ext.ForwardAlways != "":
		return ext.ForwardAlways, "unconditional", b2bua.Result{}, nil
	case ext.DND && ext.ForwardBusy != "":
		return ext.ForwardBusy, "do-not-disturb", b2bua.Result{}, nil
	case ext.DND:
		return d.mailbox(ctx, c, ext, refused(c, 486, "do not disturb"))
	case !ext.Registered && ext.ForwardNoAnswer != "":
		return ext.ForwardNoAnswer, "unavailable", b2bua.Result{}, nil
	case !ext.Registered:
		return d.mailbox(ctx, c, ext, refused(c, 480, fmt.Sprintf("extension %s is not registered", number)))
	}
	if ext.Record {
		record(c)
	}
	if opts.Timeout == 0 && ext.RingTimeout > 0 {
		opts.Timeout = time.Duration(ext.RingTimeout) * time.Second
	}
	if opts.Timeout == 0 {
		opts.Timeout = d.Timeout
	}
	r, err = c.Connect(ctx, []string{number}, opts)
	if err != nil || r.Answered || c.Decided() || ctx.Err() != nil {
		return "", "", r, err
	}
	switch {
	case (r.Status == 486 || r.Status == 600) && ext.ForwardBusy != "":
		return ext.ForwardBusy, "user-busy", r, nil
	case (r.Status == 480 || r.Status == 408) && ext.ForwardNoAnswer != "":
		return ext.ForwardNoAnswer, "no-answer", r, nil
	case r.Status == 486 || r.Status == 600 || r.Status == 603 || r.Status == 480 || r.Status == 408:
		return d.mailbox(ctx, c, ext, r)
	}
	return "", "", r, nil
}

// mailbox sends a call the extension did not take (busy, declined, not answered, not
// registered: failed) to its mailbox when its voicemail is on, through Call.Voicemail. Without
// voicemail, or without a voicemail application (b2bua.ErrNoVoicemail), failed stands.
func (d Default) mailbox(ctx context.Context, c *b2bua.Call, ext *Extension, failed b2bua.Result) (next, reason string, r b2bua.Result, err error) {
	if !ext.Voicemail {
		return "", "", failed, nil
	}
	err = c.Voicemail(ctx, ext.Number)
	switch {
	case errors.Is(err, b2bua.ErrNoVoicemail):
		return "", "", failed, nil
	case err != nil:
		return "", "", failed, fmt.Errorf("dialplan: voicemail of %s: %w", ext.Number, err)
	case c.Decided():
		return "", "", b2bua.Result{Answered: true, Status: 200, Reason: "voicemail"}, nil
	}
	return "", "", failed, nil
}

// recordCaller records the call when the authenticated caller's extension has recording on.
func (d Default) recordCaller(ctx context.Context, c *b2bua.Call) error {
	if c.User() == "" || d.Directory == nil {
		return nil
	}
	ext, err := d.Directory.Extension(ctx, c.User())
	if err != nil {
		return fmt.Errorf("dialplan: extension %s: %w", c.User(), err)
	}
	if ext != nil && ext.Record {
		record(c)
	}
	return nil
}

// record asks for the call to be recorded from its answer on. A call that cannot be (no media
// relay, a codec the PBX does not decode) goes on unrecorded: RecordCall logged why.
func record(c *b2bua.Call) {
	_, _ = c.RecordCall()
}

// outbound sends a number that is no extension out through the trunk the Directory picks for
// it (TrunkDirectory), or refuses it with 404 when there is none.
func (d Default) outbound(ctx context.Context, c *b2bua.Call, number string, opts b2bua.ConnectOptions) (b2bua.Result, error) {
	td, ok := d.Directory.(TrunkDirectory)
	if !ok {
		return refused(c, 404, "no such extension"), nil
	}
	trunk, dial, err := td.OutboundTrunk(ctx, c, number)
	switch {
	case err != nil:
		return b2bua.Result{}, fmt.Errorf("dialplan: trunk for %s: %w", number, err)
	case trunk == "":
		return refused(c, 404, "no such extension"), nil
	}
	opts.Trunk = trunk
	if opts.Timeout == 0 {
		opts.Timeout = d.Timeout
	}
	return c.Connect(ctx, []string{dial}, opts)
}

// refused is the result of an attempt that failed before anything rang, kept as the caller's
// answer should routing end there (as a failed Connect's is), so default routing does not take
// the call over afterwards.
func refused(c *b2bua.Call, status int, reason string) b2bua.Result {
	c.SetFallback(status, reason)
	return b2bua.Result{Status: status, Reason: reason}
}

// group rings the ring group with that number, or refuses the call with 404 when there is none.
func (d Default) group(ctx context.Context, c *b2bua.Call, number string, opts b2bua.ConnectOptions) (b2bua.Result, error) {
	gd, ok := d.Directory.(GroupDirectory)
	if !ok {
		return d.outbound(ctx, c, number, opts)
	}
	g, err := gd.Group(ctx, number)
	switch {
	case err != nil:
		return b2bua.Result{}, fmt.Errorf("dialplan: ring group %s: %w", number, err)
	case g == nil:
		return d.outbound(ctx, c, number, opts)
	}
	if opts.Timeout == 0 {
		opts.Timeout = d.Timeout
	}
	return RingGroup(ctx, c, *g, opts)
}

// pauseToggle serves the pause feature code (PauseCode).
func (d Default) pauseToggle(ctx context.Context, c *b2bua.Call, ad AgentDirectory) error {
	ext := c.User()
	if ext == "" {
		ext = c.Request().From().Address.User
	}
	paused, queues, err := PauseToggle(ctx, ad, ext, "")
	if err != nil {
		return err
	}
	var hdrs []sip.Header
	warn := func(why string) {
		if d.Warning != nil {
			hdrs = append(hdrs, sip.NewHeader("Warning", d.Warning(why)))
		}
	}
	switch {
	case len(queues) == 0:
		warn(fmt.Sprintf("extension %s is in no queue", ext))
		return c.Reject(404, "Not A Queue Agent", hdrs...)
	case paused:
		warn(fmt.Sprintf("%s paused in %s", ext, strings.Join(queues, ", ")))
		return c.Reject(603, "Agent Paused", hdrs...)
	}
	warn(fmt.Sprintf("%s unpaused in %s", ext, strings.Join(queues, ", ")))
	return c.Reject(603, "Agent Unpaused", hdrs...)
}
