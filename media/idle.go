package media

import "time"

// The media timeout, per direction: a call ends when one side has sent no RTP for Config.Timeout
// while it was expected to send. A phone that died, lost its network or crashed stops sending;
// the other side usually goes on, so waiting for both to fall silent kept half-dead calls up (and
// billed) until the living side hung up itself.
//
// A side is expected to send when both sides have described the stream, the other side receives
// (its direction is sendrecv or recvonly, at an address) and the side itself offers sendrecv at an
// address. RFC 3264 §8.4 hold is a sendonly or inactive description (RFC 2543's c=0.0.0.0 in
// older phones): the held side got recvonly or inactive and must not send; the side that holds may
// send music, but many phones send nothing, so it is not expected to either. A held call
// therefore times out on neither side. A side that answered recvonly to a sendrecv offer (it only
// listens) is not expected to send, while the other side still is.
//
// Each side's silence counts from its last RTP packet or the latest description of either side
// (a resumed call gives both sides the whole timeout), and only while the side is expected to
// send.
//
// While an App is attached to a side (Attach), the PBX is that side's other end: it receives
// whatever the side sends, so the side is expected to send by its own description alone (an IVR
// caller whose phone died is hung up like any other).

// watch checks the timeout every tick until the session ends.
func (s *Session) watch() {
	defer s.wg.Done()
	tick := time.NewTicker(min(s.r.cfg.Timeout/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-tick.C:
			s.checkIdle(now)
		}
	}
}

// checkIdle closes Idle when a side expected to send has been silent for the timeout.
func (s *Session) checkIdle(now time.Time) {
	s.idleMu.Lock()
	defer s.idleMu.Unlock()
	if s.fired {
		return
	}
	caller, callee := s.silent(s.a, now), s.silent(s.b, now)
	switch {
	case caller && callee:
		s.idleSide = "both"
	case caller:
		s.idleSide = s.a.name
	case callee:
		s.idleSide = s.b.name
	default:
		return
	}
	s.fired = true
	close(s.idle)
}

// silent reports whether sd is expected to send and has not for the timeout. A side not expected
// to send has its clock kept at now, so that its silence counts from when it is. The caller holds
// s.idleMu.
func (s *Session) silent(sd *side, now time.Time) bool {
	if !expects(sd) {
		sd.last.Store(now.UnixNano())
		return false
	}
	return now.Sub(time.Unix(0, sd.last.Load())) >= s.r.cfg.Timeout
}

// expects reports whether sd is expected to send RTP, by both sides' latest descriptions.
func expects(sd *side) bool {
	sd.mu.Lock()
	sends := sd.described && sd.dir == "sendrecv" && sd.signalled.IsValid()
	sd.mu.Unlock()
	if !sends {
		return false
	}
	if sd.app.Load() != nil {
		return true // the PBX is its other end, and receives
	}
	o := sd.other
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.described && (o.dir == "sendrecv" || o.dir == "recvonly") && o.signalled.IsValid()
}

// rearm restarts both sides' silence at now, after a description, and arms a new Idle if the
// timeout had hit (a call ringing on early media past the timeout is answered with a fresh one).
func (s *Session) rearm(now time.Time) {
	s.idleMu.Lock()
	defer s.idleMu.Unlock()
	s.a.last.Store(now.UnixNano())
	s.b.last.Store(now.UnixNano())
	if s.fired {
		s.idle, s.idleSide, s.fired = make(chan struct{}), "", false
	}
}

// Idle returns a channel closed when the media timeout hit: one side sent no RTP for
// Config.Timeout while it was expected to send (idle.go says when that is). The call should be
// hung up; IdleSide says who fell silent. A description that arrives afterwards arms a new
// channel, which Idle then returns.
func (s *Session) Idle() <-chan struct{} {
	s.idleMu.Lock()
	defer s.idleMu.Unlock()
	return s.idle
}

// IdleSide says who fell silent once Idle is closed: "caller", "callee" or "both" ("" before).
func (s *Session) IdleSide() string {
	s.idleMu.Lock()
	defer s.idleMu.Unlock()
	return s.idleSide
}
