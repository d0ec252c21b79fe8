package media

import (
	"time"

	"github.com/pion/rtcp"
)

// Report is what a side said in its latest RTCP reception report (RFC 3550 §6.4) about the audio
// it receives through the PBX, and the round trip between the PBX and the side.
type Report struct {
	At       time.Time // when the latest report arrived; zero: none yet
	Lost     int64     // cumulative packets lost, as the side counts them
	Fraction float64   // fraction lost since the side's previous report, 0 to 1
	Jitter   float64   // interarrival jitter in milliseconds
	// RTT is the round trip between the PBX and the side (RFC 3550 §6.4.1: the report's arrival
	// minus the time the PBX passed on the sender report it names, minus the side's delay); zero
	// until a report names a sender report the PBX relayed to the side.
	RTT time.Duration
}

// srSeen is a sender report the PBX relayed to a side: the middle 32 bits of its NTP time, which
// the side's reports name as LSR, and when it left the PBX.
type srSeen struct {
	lsr uint32
	at  time.Time
}

// readRTCP looks into RTCP from side sd, relayed to the other side at now: sender reports are
// remembered on the other side (for its round trip), reception reports stored as sd's Report.
// RTCP that does not parse is relayed all the same; the endpoints decide.
func (s *Session) readRTCP(sd *side, pkt []byte, now time.Time) {
	packets, err := rtcp.Unmarshal(pkt)
	if err != nil {
		return
	}
	for _, p := range packets {
		var blocks []rtcp.ReceptionReport
		switch p := p.(type) {
		case *rtcp.SenderReport:
			o := sd.other
			o.mu.Lock()
			o.srs[o.srNext%len(o.srs)] = srSeen{lsr: uint32(p.NTPTime >> 16), at: now}
			o.srNext++
			o.mu.Unlock()
			blocks = p.Reports
		case *rtcp.ReceiverReport:
			blocks = p.Reports
		}
		if len(blocks) > 0 {
			s.takeReport(sd, blocks, now)
		}
	}
}

// takeReport stores the block about the stream sd receives: the one naming the other side's SSRC,
// else the first.
func (s *Session) takeReport(sd *side, blocks []rtcp.ReceptionReport, now time.Time) {
	o := sd.other
	o.mu.Lock()
	ssrc, clock := o.stats.ssrc, o.stats.clock
	o.mu.Unlock()
	b := blocks[0]
	for _, x := range blocks {
		if x.SSRC == ssrc {
			b = x
		}
	}
	if clock == 0 {
		clock = 8000
	}
	lost := int64(b.TotalLost & 0xffffff)
	if lost&0x800000 != 0 {
		lost -= 1 << 24 // a signed 24-bit count: duplicates make it negative
	}
	sd.mu.Lock()
	defer sd.mu.Unlock()
	sd.report = Report{At: now, Lost: lost, Fraction: float64(b.FractionLost) / 256, Jitter: float64(b.Jitter) / clock * 1000, RTT: sd.report.RTT}
	if b.LastSenderReport == 0 {
		return
	}
	for _, sr := range sd.srs {
		if sr.lsr == b.LastSenderReport && !sr.at.IsZero() {
			delay := time.Duration(b.Delay) * time.Second / 65536
			if rtt := now.Sub(sr.at) - delay; rtt >= 0 {
				sd.report.RTT = rtt
			}
			break
		}
	}
}
