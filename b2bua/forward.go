package b2bua

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/internal/sipx"
)

// Forwarding: a call handed on from the party it was meant for to another (call forwarding,
// RFC 5806's "diversion", RFC 7044's "retargeting"). The call keeps every forward it went
// through; each one tells the caller (181 Call Is Being Forwarded) and every B-leg INVITE sent
// after it carries the whole history twice over: in Diversion headers (RFC 5806, what most phones
// and trunks read) and in a History-Info header (RFC 7044, the standard one), with the RFC 4458
// cause of each forward on its target. A forward never goes back to a party the call was already
// forwarded from or to, and a call is forwarded at most MaxDiversions times.

// MaxDiversions is how many times one call can be forwarded; the next forward fails with 483.
const MaxDiversions = 5

// ForwardOptions say how Forward tells the caller and the new callee about the forwarding.
type ForwardOptions struct {
	ConnectOptions
	// Reason goes into the Diversion header (RFC 5806): "unconditional" (the default),
	// "user-busy", "no-answer", "unavailable", "time-of-day", "do-not-disturb", ...
	Reason string
}

// Forward forwards the call to dests (Divert, with dests[0] as the new target) and connects it
// to them. A forward that Divert refuses (a loop: 482; too many forwards: 483) rings nothing and
// comes back as the Result's status.
func (c *Call) Forward(ctx context.Context, dests []string, opts ForwardOptions) (Result, error) {
	if len(dests) == 0 {
		return Result{}, errors.New("b2bua: forward needs a destination")
	}
	if err := c.Divert(dests[0], opts.Reason); err != nil {
		var se *StatusError
		switch {
		case errors.As(err, &se):
			return Result{Status: se.Code, Reason: se.Reason}, nil
		case errors.Is(err, ErrDecided):
			return c.endedResult(), err
		}
		return Result{}, err
	}
	return c.Connect(ctx, dests, opts.ConnectOptions)
}

// Divert records that the call is forwarded to dest (an extension number or a sip: URI) for
// reason ("" is "unconditional"), from the party it was meant for until now: the dialled number,
// or the target of the previous forward. It sends the caller 181 Call Is Being Forwarded with
// the Diversion headers, and every B-leg INVITE sent from now on carries Diversion and
// History-Info. Ringing dest is up to the caller of Divert (Connect, Dial).
//
// A dest the call was already at (the dialled number or a target of an earlier forward) is a
// loop: Divert returns a *StatusError with 482 (Loop Detected); a forward beyond MaxDiversions
// returns 483 (Too Many Hops). Either becomes the status the caller gets if routing ends there.
func (c *Call) Divert(dest, reason string) error {
	if reason == "" {
		reason = "unconditional"
	}
	if !sipx.IsToken(reason) {
		return fmt.Errorf("b2bua: forward reason %q is not a token", reason)
	}
	uri, err := ParseDestination(dest)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.state.decided() {
		c.mu.Unlock()
		return ErrDecided
	}
	hop, refusal := c.setup.fwd.add(c.callee, destKey(dest, uri), dest, reason)
	hdrs := c.setup.fwd.diversions(c.host())
	c.mu.Unlock()
	if refusal != nil {
		c.log.Info("forward refused", "dest", dest, "status", refusal.Code, "reason", refusal.Reason)
		c.remember(ringResult{status: refusal.Code, by: "pbx", reason: refusal.Reason})
		return refusal
	}
	c.log.Info("call forwarded", "from", hop.from, "to", dest, "reason", reason)
	return c.Provisional(181, "", hdrs...)
}

// destKey names a destination for loop detection: an extension by its number, a URI by its
// text without case.
func destKey(dest string, uri sip.Uri) string {
	if uri.Host == "" {
		return dest
	}
	return strings.ToLower(dest)
}

// forwarding is a call's history of forwards. Guarded by the call's mu.
type forwarding struct {
	hops    []diversion
	visited map[string]bool // destKey of the dialled number and of every forward's target
}

// diversion is one forward: the call meant for from went to to, for reason.
type diversion struct {
	from, to, reason string
}

// add records a forward to dest, or returns why it cannot be done.
func (f *forwarding) add(callee, key, dest, reason string) (diversion, *StatusError) {
	if f.visited == nil {
		f.visited = map[string]bool{callee: true}
	}
	switch {
	case f.visited[key]:
		return diversion{}, &StatusError{Code: 482, Reason: fmt.Sprintf("forwarding loop: the call was at %s before", dest)}
	case len(f.hops) >= MaxDiversions:
		return diversion{}, &StatusError{Code: 483, Reason: fmt.Sprintf("forwarded more than %d times", MaxDiversions)}
	}
	from := callee
	if n := len(f.hops); n > 0 {
		from = f.hops[n-1].to
	}
	d := diversion{from: from, to: dest, reason: reason}
	f.hops = append(f.hops, d)
	f.visited[key] = true
	return d, nil
}

// headers returns the Diversion and History-Info headers of the forwards so far (none before
// the first).
func (f *forwarding) headers(callee, host string) []sip.Header {
	if len(f.hops) == 0 {
		return nil
	}
	return append(f.diversions(host), f.historyInfo(callee, host))
}

// diversions returns one Diversion header per forward, the latest first (RFC 5806 §4: each
// diverting party adds its entry on top), each counting one diversion:
//
//	Diversion: <sip:102@pbx.example.com>;reason=user-busy;counter=1
//	Diversion: <sip:101@pbx.example.com>;reason=unconditional;counter=1
func (f *forwarding) diversions(host string) []sip.Header {
	out := make([]sip.Header, 0, len(f.hops))
	for i := len(f.hops) - 1; i >= 0; i-- {
		d := f.hops[i]
		out = append(out, sip.NewHeader("Diversion", "<"+partyURI(d.from, host)+">;reason="+d.reason+";counter=1"))
	}
	return out
}

// historyInfo returns the History-Info header (RFC 7044 §4): the dialled party as index 1, then
// each forward's target one level deeper, mapped from its parent (mp, §4.2.2: the target user
// changed) and with the RFC 4458 cause of the forward as a URI parameter; each party forwarded
// away from carries the same cause in an escaped Reason header (§4.2.1), as RFC 7544 §5 maps
// Diversion to History-Info:
//
//	History-Info: <sip:101@pbx.example.com?Reason=SIP%3Bcause%3D302>;index=1,
//	  <sip:102@pbx.example.com;cause=302?Reason=SIP%3Bcause%3D486>;index=1.1;mp=1,
//	  <sip:103@pbx.example.com;cause=486>;index=1.1.1;mp=1.1
func (f *forwarding) historyInfo(callee, host string) sip.Header {
	entries := make([]string, 0, len(f.hops)+1)
	index, parent := "1", ""
	for i := 0; i <= len(f.hops); i++ {
		party, cause, reason := callee, 0, 0
		if i > 0 {
			party, cause = f.hops[i-1].to, causeOf(f.hops[i-1].reason)
		}
		if i < len(f.hops) {
			reason = causeOf(f.hops[i].reason)
		}
		entry := "<" + historyURI(party, host, cause, reason) + ">;index=" + index
		if parent != "" {
			entry += ";mp=" + parent
		}
		entries = append(entries, entry)
		parent, index = index, index+".1"
	}
	return sip.NewHeader("History-Info", strings.Join(entries, ","))
}

// causeOf is the RFC 4458 §3 cause of a forward given its RFC 5806 reason: 302 unconditional,
// 486 busy (do-not-disturb takes the busy path), 408 no answer, 480 unavailable (not reachable
// at all), 404 for any other reason (RFC 7544 §5.1's default).
func causeOf(reason string) int {
	switch strings.ToLower(reason) {
	case "unconditional":
		return 302
	case "user-busy", "do-not-disturb":
		return 486
	case "no-answer":
		return 408
	case "unavailable", "deflection":
		return 480
	}
	return 404
}

// partyURI is a SIP URI for a party of a forward: an extension number becomes a URI at the PBX's
// host; a URI stays as it is.
func partyURI(p, host string) string {
	lower := strings.ToLower(p)
	switch {
	case strings.HasPrefix(lower, "sip:") || strings.HasPrefix(lower, "sips:"):
		return p
	case p == "":
		return "sip:" + host
	}
	return "sip:" + p + "@" + host
}

// historyURI is partyURI with a cause URI parameter (RFC 4458 §3) when cause is not 0, and an
// escaped Reason header with the cause reason when that is not 0.
func historyURI(p, host string, cause, reason int) string {
	var uri sip.Uri
	if err := sip.ParseUri(partyURI(p, host), &uri); err != nil {
		return partyURI(p, host) // Divert parsed it already; not reached
	}
	if cause != 0 {
		uri.UriParams.Add("cause", strconv.Itoa(cause))
	}
	if reason != 0 {
		uri.Headers.Add("Reason", "SIP%3Bcause%3D"+strconv.Itoa(reason))
	}
	return uri.String()
}
