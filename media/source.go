package media

import (
	"net"
	"net/netip"
	"time"

	"github.com/pion/rtp"
)

// Strict source learning: which source a side's packets are taken from.
//
// Each side's port pair on the PBX can be reached by anyone who finds it. The relay takes a
// side's packets from one source only, which it learns, then locks to (symmetric RTP, RFC 4961:
// what goes to the side goes to that source). The rule is Asterisk's strictrtp and rtpengine's
// strict-source with its heuristic learning, fitted to a B2BUA that knows both descriptions:
//
//   - Learning (re)starts when the side sends a description (INVITE, 183, 200, re-INVITE, UPDATE,
//     ACK), and, while nothing is learned for the side, when the other side's description or the
//     PBX's own early answer arrives: that is when the side's media may start (a caller behind
//     NAT sends after the answer reaches it, which may be minutes after its INVITE). It lasts
//     Config.LatchWindow. A side with no description learns nothing.
//   - The address the side signalled (its SDP's c= and m= port) is taken at once, whenever it
//     sends while nothing is learned, and within the window it replaces a source learned
//     otherwise (Asterisk's "RTP target address", rtpengine's first rank). Learned that way, the
//     source is final until a description names another address.
//   - Within the window another source (a phone behind NAT, whose packets do not come from the
//     address it signalled) must pass a probation: at least `probation` packets of one SSRC with
//     consecutive sequence numbers, spanning `probationSpan`, with no packet from another
//     candidate in between (competing streams reset each other, as in Asterisk). It may start
//     only while the learned source, if any, has been silent for Config.LatchDelay (a source that
//     still sends is not displaced). On another host than the signalled one it must also wait
//     Config.LatchDelay after learning started, so that a phone sending from the address it
//     signalled is not beaten to it by a host spraying the relay's ports; and another host is
//     never learned when the side signalled a public address: such a phone is not behind NAT (a
//     phone behind NAT names a private, shared (RFC 6598) or loopback address, or one that its
//     packets do come from: STUN, an ALG).
//   - After the window only the learned source is taken (or, while none is learned, the
//     signalled address). A new description naming another address forgets the learned source.
//   - Everything else is dropped and counted (Stats.Strangers): never relayed, and never a
//     destination.
//
// What this cannot stop, documented in docs/architecture.md ("Threat model"): a host that sends a
// steady stream to a side's port within the window, after LatchDelay, before a phone that signalled
// a private address starts sending, is learned in its place (a phone behind NAT cannot be told
// from it); and a host that sees the packets (on the path) can forge the learned source.

// probation is how many packets in sequence a source other than the signalled one must send to
// be learned, and probationSpan the least time they must span (Asterisk's defaults: 4 packets, and
// 9 ms each but 5 ms of jitter). A stranger flooding the port cannot fit a probation between two
// packets of a learned source that still sends every 20 ms.
const (
	probation     = 4
	probationSpan = 22 * time.Millisecond
)

// candidate is a source on probation.
type candidate struct {
	src   netip.AddrPort
	ssrc  uint32
	seq   uint16
	n     int       // packets in sequence so far (0: none on probation)
	since time.Time // arrival of its first
}

// describe takes the side's new description: where it wants RTP and RTCP, rtcp-mux, and its
// direction. Learning starts again; a new address forgets the learned source.
func (sd *side) describe(rtpAddr, rtcpAddr netip.AddrPort, mux bool, dir string, now time.Time, window time.Duration) {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	if rtpAddr != sd.signalled {
		sd.source = netip.AddrPort{}
	}
	sd.described = true
	sd.signalled, sd.rtcpAddr, sd.mux, sd.dir = rtpAddr, rtcpAddr, mux, dir
	sd.relearn(now, window)
}

// relearn opens the side's learning window at now. The caller holds sd.mu.
func (sd *side) relearn(now time.Time, window time.Duration) {
	sd.learnStart, sd.learnUntil = now, now.Add(window)
	sd.cand = candidate{}
}

// accept applies the source rule to a datagram that arrived at sd's RTP port from src at now: h
// is its RTP header, nil for RTCP multiplexed on the port (which never starts a probation).
func (s *Session) accept(sd *side, src netip.AddrPort, h *rtp.Header, now time.Time) bool {
	src = unmap(src)
	sd.mu.Lock()
	defer sd.mu.Unlock()
	if src == sd.source {
		sd.heard = now
		return true
	}
	learning := now.Before(sd.learnUntil)
	switch {
	case src == sd.signalled:
		if learning || !sd.source.IsValid() {
			sd.learn(src, now)
			return true
		}
	case learning && h != nil && s.mayProbe(sd, src, now):
		if sd.probe(src, h, now) {
			sd.learn(src, now)
			return true
		}
	}
	sd.strangers++
	return false
}

// mayProbe tells whether src, neither the learned source nor the signalled address, may be on
// probation now. The caller holds sd.mu.
func (s *Session) mayProbe(sd *side, src netip.AddrPort, now time.Time) bool {
	delay := s.r.cfg.LatchDelay
	if sd.source.IsValid() && (sd.source == sd.signalled || now.Sub(sd.heard) < delay) {
		return false // final, or still sending
	}
	if src.Addr() == sd.signalled.Addr() {
		return true // the signalled host, from another port: a NAT keeping the address
	}
	return mayBeNATed(sd.signalled.Addr()) && now.Sub(sd.learnStart) >= delay
}

// mayBeNATed reports whether a phone whose SDP names address a may be behind NAT, its packets
// coming from another host: an address other hosts cannot reach (private, RFC 6598 shared,
// loopback, link-local), or none at all (hold with 0.0.0.0, a disabled stream).
func mayBeNATed(a netip.Addr) bool {
	return !a.IsValid() || a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() || sharedAddressSpace.Contains(a)
}

// sharedAddressSpace is carrier-grade NAT's (RFC 6598).
var sharedAddressSpace = netip.MustParsePrefix("100.64.0.0/10")

// learn locks the side's packets to src. The caller holds sd.mu.
func (sd *side) learn(src netip.AddrPort, now time.Time) {
	sd.source, sd.heard, sd.cand = src, now, candidate{}
}

// probe counts a packet of src toward its probation, and reports whether it passed. The caller
// holds sd.mu.
func (sd *side) probe(src netip.AddrPort, h *rtp.Header, now time.Time) bool {
	c := &sd.cand
	if c.n > 0 && c.src == src && c.ssrc == h.SSRC && h.SequenceNumber == c.seq+1 {
		c.n++
	} else {
		*c = candidate{src: src, ssrc: h.SSRC, n: 1, since: now}
	}
	c.seq = h.SequenceNumber
	return c.n >= probation && now.Sub(c.since) >= probationSpan
}

// acceptRTCP tells whether RTCP from src, at the side's RTCP port, comes from the side: from the
// learned source's host, or from the signalled host until a source is learned. The RTCP port is
// not learned on its own (RFC 3550 §11: it sits beside RTP).
func (sd *side) acceptRTCP(src netip.AddrPort) bool {
	ip := src.Addr().Unmap()
	sd.mu.Lock()
	defer sd.mu.Unlock()
	var ok bool
	if sd.source.IsValid() {
		ok = sd.source.Addr() == ip
	} else {
		ok = sd.signalled.IsValid() && sd.signalled.Addr() == ip
	}
	if !ok {
		sd.strangers++
	}
	return ok
}

// rtpDest is where packets for this side go: the learned source (symmetric RTP, RFC 4961), or
// the signalled address until one is learned.
func (sd *side) rtpDest() netip.AddrPort {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	if sd.source.IsValid() {
		return sd.source
	}
	return sd.signalled
}

// rtcpDest is where RTCP for this side goes, and whether it goes over the RTP port (rtcp-mux).
func (sd *side) rtcpDest() (netip.AddrPort, bool) {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	if sd.mux {
		if sd.source.IsValid() {
			return sd.source, true
		}
		return sd.signalled, true
	}
	if sd.source.IsValid() && sd.source.Addr() != sd.signalled.Addr() {
		// Behind NAT: RTCP goes to the port above the learned RTP source.
		return netip.AddrPortFrom(sd.source.Addr(), sd.source.Port()+1), false
	}
	return sd.rtcpAddr, false
}

// addrPort converts an address from SDP; nil, port 0 or an unspecified address (0.0.0.0, the
// hold of RFC 2543) is the invalid AddrPort: nothing is sent there.
func addrPort(a *net.UDPAddr) netip.AddrPort {
	if a == nil || a.Port == 0 {
		return netip.AddrPort{}
	}
	ap := unmap(a.AddrPort())
	if !ap.Addr().IsValid() || ap.Addr().IsUnspecified() {
		return netip.AddrPort{}
	}
	return ap
}

func unmap(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }
