package media

import (
	"time"

	"github.com/pion/rtp"
)

// Stats is what one side of a call sent, as the relay received it.
type Stats struct {
	Packets uint64  // RTP packets
	Bytes   uint64  // RTP bytes, headers included
	Lost    uint64  // packets missing from the sequence (expected - received, RFC 3550 §6.4.1)
	Jitter  float64 // interarrival jitter in milliseconds (RFC 3550 §6.4.1, A.8)
	RTCP    uint64  // RTCP packets relayed
	// Strangers counts the datagrams (RTP or RTCP) that arrived at the side's ports from a
	// source the relay does not take for it (strict source learning, source.go): dropped, never
	// relayed.
	Strangers uint64
	Report    Report // the side's latest RTCP reception report: how the audio it receives arrives
}

// stream keeps the statistics of one side's RTP.
type stream struct {
	packets, bytes uint64
	started        bool
	ssrc           uint32
	baseSeq        uint32 // extended sequence number of the first packet
	maxSeq         uint32 // highest extended sequence number seen
	received       uint64 // since the last SSRC change
	lostBefore     uint64 // losses counted before an SSRC change
	clock          float64
	transit        float64 // previous transit time, in RTP timestamp units
	jitter         float64 // in RTP timestamp units
}

// add accounts one packet (RFC 3550 A.1 for the sequence, A.8 for jitter) of a payload type whose
// RTP clock rate is clock (0: unknown, taken as 8000). A new SSRC (a re-INVITE, a transfer)
// starts the sequence afresh, keeping the losses counted so far; a new clock rate (a codec
// change) starts the jitter afresh.
func (s *stream) add(h *rtp.Header, size int, now time.Time, clock uint32) {
	s.packets++
	s.bytes += uint64(size)
	if clock == 0 {
		clock = 8000
	}
	newClock := float64(clock) != s.clock
	if newClock {
		s.clock, s.jitter = float64(clock), 0
	}
	arrival := float64(now.UnixNano()) / 1e9 * s.clock
	if newClock && s.started && h.SSRC == s.ssrc {
		s.transit = arrival - float64(h.Timestamp)
	}
	if !s.started || h.SSRC != s.ssrc {
		s.lostBefore += s.lost()
		s.started, s.ssrc = true, h.SSRC
		s.baseSeq, s.maxSeq = uint32(h.SequenceNumber), uint32(h.SequenceNumber)
		s.received = 1
		s.transit = arrival - float64(h.Timestamp)
		return
	}
	s.received++
	// Extend the 16-bit sequence number with the cycle count of the highest seen.
	cycles := s.maxSeq &^ 0xffff
	seq := cycles | uint32(h.SequenceNumber)
	if int32(seq-s.maxSeq) < -0x8000 {
		seq += 0x10000 // wrapped forward
	} else if int32(seq-s.maxSeq) > 0x8000 {
		seq -= 0x10000 // a late packet from the previous cycle
	}
	if int32(seq-s.maxSeq) > 0 {
		s.maxSeq = seq
	}
	transit := arrival - float64(h.Timestamp)
	d := transit - s.transit
	s.transit = transit
	if d < 0 {
		d = -d
	}
	s.jitter += (d - s.jitter) / 16
}

func (s *stream) lost() uint64 {
	if !s.started {
		return 0
	}
	expected := uint64(s.maxSeq-s.baseSeq) + 1
	if expected <= s.received {
		return 0
	}
	return expected - s.received
}

func (sd *side) snapshot() Stats {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	st := Stats{Packets: sd.stats.packets, Bytes: sd.stats.bytes, Lost: sd.stats.lostBefore + sd.stats.lost(), RTCP: sd.rtcpPackets, Strangers: sd.strangers,
		Report: sd.report}
	if sd.stats.clock > 0 {
		st.Jitter = sd.stats.jitter / sd.stats.clock * 1000
	}
	return st
}
