package b2bua

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Connect after Answer: the caller already talks to the PBX's port facing it. The callees are
// offered the codec the caller and the PBX agreed on (with telephone-event), from the port facing
// them; the caller hears ringback from the PBX meanwhile. When a callee answers with that codec
// the PBX simply stops being the caller's other end and relays, through the same port: the
// caller needs no new offer. Only a callee that answers with another codec makes the PBX
// re-INVITE the caller with the callee's session. A callee that fails leaves the caller with the
// PBX, and routing goes on.

// dialAnswered rings targets for a caller the PBX answered itself.
func (c *Call) dialAnswered(ctx context.Context, targets []Target, opts ConnectOptions) (Result, error) {
	if len(targets) == 0 {
		return Result{}, errors.New("b2bua: dial needs a target")
	}
	if ctx.Err() != nil {
		return Result{Status: 487, Reason: "routing gave up: " + ctx.Err().Error()}, nil
	}
	o := c.legOrigin(targets, opts)
	c.mu.Lock()
	o.body = restrictFormats(c.media.offer, c.media.appSDP)
	c.mu.Unlock()
	stop := c.ringback()
	r := c.ring(targets, o, ringOptions{follow: true, ctx: ctx, timeout: opts.Timeout})
	stop()
	switch {
	case r.leg != nil && c.bridge(r.leg, r.res, o.body):
		return Result{Answered: true, Status: 200, Reason: "answered"}, nil
	case r.leg != nil:
		return c.endedResult(), nil
	}
	c.log.Info("callee not connected: the caller stays with the pbx", "status", r.status, "reason", r.reason)
	return Result{Status: r.status, Reason: r.reason}, nil
}

// ringback plays ringback to the caller until the returned function is called.
func (c *Call) ringback() (stop func()) {
	app, m, err := c.appEnd()
	if err != nil {
		return func() {}
	}
	played := app.start(&looped{load: func() (Frames, error) { return m.Sound("tone:ringback") }})
	return func() { app.silence(played) }
}

// looped plays a sound over and over.
type looped struct {
	load func() (Frames, error)
	cur  Frames
}

func (l *looped) Samples(dst []int16) bool {
	for range 2 {
		if l.cur == nil {
			f, err := l.load()
			if err != nil {
				return false
			}
			l.cur = f
		}
		if l.cur.Samples(dst) {
			return true
		}
		l.cur = nil
	}
	return false
}

// bridge connects the callee's leg l, which answered res to offer, to the caller the PBX
// answered: the PBX leaves the caller's side and relays it. It reports false when the answer is
// not connected (its description cannot be relayed, or the call ended meanwhile): the leg is
// hung up then.
func (c *Call) bridge(l *leg, res *sip.Response, offer []byte) bool {
	body, err := c.sdpFrom(false, res.Body())
	if err != nil {
		c.log.Warn("callee's answer refused", "status", statusOf(err), "error", err)
		c.dropAnswer(l)
		return false
	}
	c.mu.Lock()
	if c.state != stateApplication || !c.move(stateAnswered) {
		c.mu.Unlock()
		c.dropAnswer(l)
		return false
	}
	now := time.Now()
	c.winner = l
	c.closeSegment(now, "connected")
	c.seg = segment{caller: c.rec.Caller, callee: l.party(), start: now}
	c.rec.Callee = l.party()
	pbxAnswer := c.media.appSDP
	c.media.sdpA, c.media.sdpB = offer, body
	c.mu.Unlock()
	l.answered()
	c.leaveApplication() // relaying from now on, through the port the caller already uses
	c.e.table.add(l.d.key(), c, false)
	c.emit(CallAnswered, 200)
	c.armSession(res)
	c.log.Info("caller connected to the callee", "callee", l.party(), "b_call_id", l.d.callID)
	if !sameCodec(pbxAnswer, body) {
		c.log.Info("the callee chose another codec: re-offering to the caller")
		if answer, ok := c.reoffer(c.a, body); ok {
			if _, err := c.sdpFrom(true, answer); err != nil {
				c.log.Warn("caller's answer to the re-offer refused", "error", err)
			}
		} else {
			c.log.Warn("the caller refused the callee's session: hanging up")
			c.Hangup("caller refused the callee's codec")
		}
	}
	return true
}

// restrictFormats keeps, in offer's first audio section, only the formats whose codec answer's
// audio section names (the codec the caller and the PBX agreed on, and telephone-event); offer
// is returned unchanged when nothing would be left.
func restrictFormats(offer, answer []byte) []byte {
	session, sections := splitSDP(offer)
	_, answered := splitSDP(answer)
	a, ok := firstAudio(answered)
	if !ok {
		return offer
	}
	var b bytes.Buffer
	for _, l := range session.lines {
		b.WriteString(l + "\r\n")
	}
	done := false
	for _, s := range sections {
		m, ok := s.mline()
		if done || !ok || m.kind != "audio" {
			for _, l := range s.lines {
				b.WriteString(l + "\r\n")
			}
			continue
		}
		am, _ := a.mline()
		keep := common(a, am, s, m)
		if len(keep) == 0 {
			return offer
		}
		done = true
		kept := map[string]bool{}
		for _, f := range keep {
			kept[f] = true
		}
		b.WriteString("m=" + m.kind + " " + m.port + " " + m.proto + " " + strings.Join(keep, " ") + "\r\n")
		for _, l := range s.lines[1:] {
			if f, isFormat := formatAttr(l); isFormat && !kept[f] {
				continue
			}
			b.WriteString(l + "\r\n")
		}
	}
	return b.Bytes()
}

// firstAudio returns the first audio section of a description.
func firstAudio(sections []sdpSection) (sdpSection, bool) {
	for _, s := range sections {
		if m, ok := s.mline(); ok && m.kind == "audio" {
			return s, true
		}
	}
	return sdpSection{}, false
}

// sameCodec reports whether two descriptions' audio sections start with the same codec.
func sameCodec(a, b []byte) bool {
	_, as := splitSDP(a)
	_, bs := splitSDP(b)
	sa, ok1 := firstAudio(as)
	sb, ok2 := firstAudio(bs)
	if !ok1 || !ok2 {
		return false
	}
	ma, _ := sa.mline()
	mb, _ := sb.mline()
	if len(ma.formats) == 0 || len(mb.formats) == 0 {
		return false
	}
	return sa.codec(ma.formats[0]) == sb.codec(mb.formats[0])
}
