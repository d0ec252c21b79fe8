package b2bua

import (
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Session timers (RFC 4028) pass through the PBX: Session-Expires and Min-SE cross in both
// directions with the INVITE, the refreshing re-INVITE or UPDATE and their answers, and the two
// ends negotiate and refresh between themselves. The PBX watches: once a 2xx has fixed an
// interval, a session nobody refreshes in time is hung up on both sides, so a dialog whose phone
// died does not stay up for ever.

// timerHeaderNames are the headers of RFC 4028 that cross the legs.
var timerHeaderNames = []string{"Session-Expires", "Min-SE"}

// copyTimerHeaders copies the session timer headers of from into to, with "timer" in Supported
// (or Require) when from had it there.
func copyTimerHeaders(from *sip.Request, to *sip.Request) {
	for _, name := range timerHeaderNames {
		if h := from.GetHeader(name); h != nil {
			to.AppendHeader(sip.NewHeader(name, h.Value()))
		}
	}
	for _, name := range []string{"Supported", "Require"} {
		if hasTag(from.GetHeaders(name), "timer") {
			to.AppendHeader(sip.NewHeader(name, "timer"))
		}
	}
}

// timerHeaders returns the session timer headers of a response to relay with it.
func timerHeaders(res *sip.Response) []sip.Header {
	var out []sip.Header
	for _, name := range timerHeaderNames {
		if h := res.GetHeader(name); h != nil {
			out = append(out, sip.NewHeader(name, h.Value()))
		}
	}
	if hasTag(res.GetHeaders("Require"), "timer") {
		out = append(out, sip.NewHeader("Require", "timer"))
	}
	return out
}

func hasTag(hs []sip.Header, tag string) bool {
	for _, h := range hs {
		for _, t := range strings.Split(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(t), tag) {
				return true
			}
		}
	}
	return false
}

// sessionInterval reads the delta-seconds of a Session-Expires header, or 0.
func sessionInterval(res *sip.Response) time.Duration {
	h := res.GetHeader("Session-Expires")
	if h == nil {
		return 0
	}
	v, _, _ := strings.Cut(h.Value(), ";")
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}

// armSession (re)starts the watch of a session whose 2xx res fixed an interval: without a
// refresh the call is hung up min(32 s, interval/3) before the session would expire
// (RFC 4028 §10).
func (c *Call) armSession(res *sip.Response) {
	d := sessionInterval(res)
	if d == 0 {
		return
	}
	deadline := d - min(32*time.Second, d/3)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateEnded {
		return
	}
	if c.session != nil {
		c.session.Stop()
	}
	c.session = time.AfterFunc(deadline, func() {
		c.log.Warn("session not refreshed in time: hanging up", "interval", d)
		c.Hangup("session timer expired: no refresh")
	})
}
