package dialplan

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua"
)

// Default is default routing: a call to an extension goes where the extension's stored settings
// say, with no script. For the dialled extension, in this order:
//
//   - unknown: 404; disabled: 410 (Gone);
//   - forward always set: forwarded there (reason "unconditional");
//   - do not disturb: the busy path, forwarded to forward-on-busy (reason "do-not-disturb") or
//     486 (Busy Here);
//   - not registered: forwarded to forward-on-no-answer (reason "unavailable") or 480;
//   - otherwise every registered phone rings for the extension's ring timeout (the PBX's when
//     0); busy (486, 600) goes to forward-on-busy ("user-busy"), no answer (the timeout, 480 or
//     408 from the phones) to forward-on-no-answer ("no-answer"); any other answer stands.
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
}

var _ Handler = Default{}

// Handle routes the call to the dialled extension (Route) and refuses the caller with the status
// that came of it when no callee answered.
func (d Default) Handle(ctx context.Context, c *b2bua.Call) error {
	if _, tried := c.Fallback(); tried || c.Decided() {
		return nil
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
	if len(dests) != 1 || d.Directory == nil {
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
		return "", "", refused(c, 404, "no such extension"), nil
	case !ext.Enabled:
		return "", "", refused(c, 410, fmt.Sprintf("extension %s is disabled", number)), nil
	case ext.ForwardAlways != "":
		return ext.ForwardAlways, "unconditional", b2bua.Result{}, nil
	case ext.DND && ext.ForwardBusy != "":
		return ext.ForwardBusy, "do-not-disturb", b2bua.Result{}, nil
	case ext.DND:
		return "", "", refused(c, 486, "do not disturb"), nil
	case !ext.Registered && ext.ForwardNoAnswer != "":
		return ext.ForwardNoAnswer, "unavailable", b2bua.Result{}, nil
	case !ext.Registered:
		return "", "", refused(c, 480, fmt.Sprintf("extension %s is not registered", number)), nil
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
	}
	return "", "", r, nil
}

// refused is the result of an attempt that failed before anything rang, kept as the caller's
// answer should routing end there (as a failed Connect's is), so default routing does not take
// the call over afterwards.
func refused(c *b2bua.Call, status int, reason string) b2bua.Result {
	c.SetFallback(status, reason)
	return b2bua.Result{Status: status, Reason: reason}
}
