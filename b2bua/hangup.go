package b2bua

import (
	"context"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/pbxkit/pbxkit/internal/sipx"
)

// Hangup ends an answered call from the PBX's side (BYE to both sides) or gives up on one still
// being set up (its callees are cancelled and the caller gets 487). reason goes into the record.
func (c *Call) Hangup(reason string) {
	c.hangup(true, true, "pbx", reason)
}

// hangup sends BYE to the sides asked for and ends the call.
func (c *Call) hangup(toCaller, toCallee bool, by, reason string) {
	c.mu.Lock()
	up, w := c.state.up(), c.winner
	if p := c.parked; p != nil {
		// The parker's side has left the call: only the parked party is hung up.
		toCaller, toCallee = toCaller && !p.side, toCallee && p.side
	}
	if !up && c.state == stateSetup && c.abort == "" {
		c.abort = reason
	}
	c.mu.Unlock()
	if !up {
		// Still being set up: stop the legs and routing (its context ends); setup ends the call
		// and answers the caller. This must not use up hangOnce, or a 2xx that wins the race
		// could never be hung up.
		c.stop()
		c.cancelLegs()
		return
	}
	c.hangOnce.Do(func() {
		if toCallee && w != nil {
			w.bye()
		}
		if toCaller {
			c.byeIn(c.a, "bye to caller")
		}
		c.finish(200, by, reason)
	})
}

// cancelLegs cancels every leg rung for the caller.
func (c *Call) cancelLegs() {
	c.mu.Lock()
	legs := append([]*leg(nil), c.setup.legs...)
	c.mu.Unlock()
	for _, l := range legs {
		l.cancel()
	}
}

// fail sends the caller a final error and ends the call.
func (c *Call) fail(code int, by, reason string, hdrs ...sip.Header) {
	c.refuse(code, sipx.Reason(code), by, reason, hdrs...)
}

// refuse sends the caller a final non-2xx answer with the phrase given and ends the call. It
// reports false, sending nothing, when the caller already has its final answer.
func (c *Call) refuse(code int, phrase, by, reason string, hdrs ...sip.Header) bool {
	if !c.moveLocked(stateRefused) {
		return false
	}
	if _, err := c.e.respondPhrase(c.aReq, c.serverTx(), code, phrase, c.a.localTag, nil, hdrs...); err != nil {
		c.log.Debug("final response not sent", "status", code, "error", err)
	}
	c.finish(code, by, reason)
	return true
}

// finish records the end of the call once, removes its dialogs and writes its record.
func (c *Call) finish(status int, by, reason string) {
	c.mu.Lock()
	if !c.move(stateEnded) {
		c.mu.Unlock()
		return
	}
	if c.session != nil {
		c.session.Stop()
	}
	now := time.Now()
	c.rec.End, c.rec.Status, c.rec.HangupBy, c.rec.Reason = now, status, by, reason
	if !c.rec.Answer.IsZero() {
		c.rec.Status = 200
		c.closeSegment(now, "hangup by "+by)
	}
	m := c.media.session
	c.mu.Unlock()
	c.stopAudio()
	c.leaveApplication()
	c.leavePark()
	if m != nil {
		// Closed before the record is taken, so the statistics are final.
		m.Close()
		caller, callee := m.Stats()
		c.mu.Lock()
		c.rec.MediaCaller, c.rec.MediaCallee = caller, callee
		c.mu.Unlock()
	}
	c.endRecording() // after Close, which completed the file
	c.mu.Lock()
	rec, onEnd := c.rec, c.onEnd
	c.mu.Unlock()
	c.e.release(c)
	close(c.done)
	c.emit(CallEnded, 0)
	c.logEnd(rec, m != nil)
	c.writeRecord(rec)
	for _, f := range onEnd {
		f(rec)
	}
}

// closeSegment ends the stretch of the call between its current two parties. The caller holds
// c.mu.
func (c *Call) closeSegment(at time.Time, why string) {
	if c.seg.start.IsZero() {
		return
	}
	c.rec.Segments = append(c.rec.Segments, Segment{Caller: c.seg.caller, Callee: c.seg.callee,
		Start: c.seg.start, End: at, EndReason: why})
	c.seg.start = time.Time{}
}

func (c *Call) logEnd(rec Record, relayed bool) {
	attrs := []any{"status", rec.Status, "disposition", rec.Disposition(), "hangup_by", rec.HangupBy, "reason", rec.Reason}
	if relayed {
		attrs = append(attrs, "caller_packets", rec.MediaCaller.Packets, "callee_packets", rec.MediaCallee.Packets,
			"caller_lost", rec.MediaCaller.Lost, "callee_lost", rec.MediaCallee.Lost)
	}
	c.log.Info("call ended", attrs...)
}

func (c *Call) writeRecord(rec Record) {
	if c.e.cdr == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.e.cdr.WriteRecord(ctx, rec); err != nil {
		c.log.Error("writing call record", "error", err)
	}
}
