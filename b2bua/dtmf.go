package b2bua

import (
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Key presses reach the PBX two ways: RFC 4733 telephone-events in the RTP stream (the media
// relay sees them) and SIP INFO requests in the dialog (application/dtmf-relay, the de-facto
// format of Cisco and most phones, and application/dtmf). While the PBX is the caller's other
// end they feed the application's key queue (Gather); while the call is bridged, INFO passes on
// to the other side as before and each key press also reaches the function set with OnDTMF. Every
// key press is a CallDTMF event naming its Source.

// Where a key press came from, in CallDTMF events.
const (
	DTMFRFC4733 = "rfc4733"
	DTMFInfo    = "info"
)

// OnDTMF sets f to be told of every key either side presses while the call is bridged (side
// "caller" or "callee", digit 0-9, *, #, A-D). f runs on the relay's or the SIP stack's goroutine
// and must not block. While the PBX answers the call itself the caller's keys go to Gather
// instead.
func (c *Call) OnDTMF(f func(side, digit string)) {
	c.mu.Lock()
	c.media.onKey = f
	c.mu.Unlock()
}

// keyPressed takes a key press from either side.
func (c *Call) keyPressed(fromCaller bool, digit, source string) {
	c.emitWith(Event{Kind: CallDTMF, Digit: digit, Side: side(fromCaller), Source: source})
	c.mu.Lock()
	app, hook, up := c.media.app, c.media.onKey, c.state.up() && c.state != stateApplication
	c.mu.Unlock()
	c.log.Debug("key pressed", "digit", digit, "side", side(fromCaller), "source", source)
	switch {
	case app != nil && fromCaller && len(digit) == 1:
		app.key(digit[0])
	case hook != nil && up:
		hook(side(fromCaller), digit)
	}
}

// infoDigit reads the key of a SIP INFO: application/dtmf-relay ("Signal=5\r\nDuration=160";
// Signal 10 and 11 are * and # for some phones) or application/dtmf ("5").
func infoDigit(req *sip.Request) (string, bool) {
	ct := req.ContentType()
	if ct == nil {
		return "", false
	}
	mt, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(ct.Value())), ";")
	body := strings.TrimSpace(string(req.Body()))
	switch strings.TrimSpace(mt) {
	case "application/dtmf-relay":
		for _, line := range strings.Split(body, "\n") {
			k, v, ok := strings.Cut(line, "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "signal") {
				return keyOf(strings.TrimSpace(v))
			}
		}
	case "application/dtmf":
		return keyOf(body)
	}
	return "", false
}

// isDTMFInfo reports whether an INFO's body is a key press format (application/dtmf-relay or
// application/dtmf), whether or not it names a key.
func isDTMFInfo(req *sip.Request) bool {
	ct := req.ContentType()
	if ct == nil {
		return false
	}
	mt, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(ct.Value())), ";")
	mt = strings.TrimSpace(mt)
	return mt == "application/dtmf-relay" || mt == "application/dtmf"
}

// keyOf turns a signal into a key: 0-9, *, #, A-D, or the event codes 10-15 (RFC 4733 §3.2).
func keyOf(s string) (string, bool) {
	const keys = "0123456789*#ABCD"
	if n, err := strconv.Atoi(s); err == nil && n >= 10 && n < len(keys) {
		return keys[n : n+1], true
	}
	if len(s) == 1 && strings.Contains(keys, strings.ToUpper(s)) {
		return strings.ToUpper(s), true
	}
	return "", false
}
