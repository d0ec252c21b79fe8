package media

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// RTCP passes through the relay untouched, and the relay reads it: each side's latest reception
// report (loss, fraction, jitter) and the round trip from the PBX to the side, from a sender
// report the PBX relayed to it and the side's LSR/DLSR answer.
func TestRelayReadsRTCPReports(t *testing.T) {
	r := newTestRelay(t, 2, Config{})
	a, b := newEndpoint(t), newEndpoint(t)
	s, pa, pb := callSessionWith(t, r, a.sdp("a=rtcp-mux\r\n"), b.sdp("a=rtcp-mux\r\n"))

	b.send(pb, 1, "audio from b") // the callee's stream, SSRC 0x1234
	if got, _ := a.recv(time.Second); got != "audio from b" {
		t.Fatalf("caller got %q", got)
	}
	const ntp = uint64(0x11223344_55667788)
	sr := &rtcp.SenderReport{SSRC: 0x1234, NTPTime: ntp, RTPTime: 160, PacketCount: 1, OctetCount: 12}
	sendRTCP(t, b, pb, sr)
	got := recvRTCP(t, a)
	if back, ok := got.(*rtcp.SenderReport); !ok || back.NTPTime != ntp || back.SSRC != 0x1234 {
		t.Fatalf("the caller got %#v, want the callee's sender report unchanged", got)
	}

	// The caller answers 30 ms later, saying it held the SR for 10 ms: round trip about 20 ms.
	time.Sleep(30 * time.Millisecond)
	rr := &rtcp.ReceiverReport{SSRC: 0x9999, Reports: []rtcp.ReceptionReport{
		{SSRC: 0x7777, FractionLost: 1, TotalLost: 99, Jitter: 1}, // another stream's block
		{SSRC: 0x1234, FractionLost: 64, TotalLost: 5, Jitter: 80, // the callee's: 1/4, 10 ms
			LastSenderReport: uint32(ntp >> 16 & 0xffffffff), Delay: 65536 / 100},
	}}
	sendRTCP(t, a, pa, rr)
	if back, ok := recvRTCP(t, b).(*rtcp.ReceiverReport); !ok || len(back.Reports) != 2 || back.Reports[1].TotalLost != 5 {
		t.Fatalf("the callee did not get the caller's receiver report unchanged: %#v", back)
	}
	caller, callee := s.Stats()
	rep := caller.Report
	if rep.At.IsZero() || rep.Lost != 5 || rep.Fraction != 0.25 || rep.Jitter != 10 {
		t.Fatalf("caller's report %+v, want lost 5, fraction 0.25, jitter 10 ms", rep)
	}
	if rep.RTT < 10*time.Millisecond || rep.RTT > time.Second {
		t.Fatalf("round trip %v, want about 20 ms (30 ms held minus the 10 ms the caller said)", rep.RTT)
	}
	if caller.RTCP != 1 || callee.RTCP != 1 || !callee.Report.At.IsZero() {
		t.Fatalf("RTCP counts %d/%d, callee report %+v", caller.RTCP, callee.RTCP, callee.Report)
	}

	// A negative cumulative loss (duplicates) is a signed 24-bit number; RTCP that does not
	// parse is relayed all the same and changes nothing.
	sendRTCP(t, a, pa, &rtcp.ReceiverReport{SSRC: 0x9999, Reports: []rtcp.ReceptionReport{{SSRC: 0x1234, TotalLost: 0xffffff}}})
	recvRTCP(t, b)
	junk := []byte{0x81, 201, 0, 7, 1, 2, 3, 4} // RR claiming 7 words, 8 bytes long
	if _, err := a.conn.WriteToUDP(junk, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: pa}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	b.conn.SetReadDeadline(time.Now().Add(time.Second))
	if n, _, err := b.conn.ReadFromUDP(buf); err != nil || n != len(junk) {
		t.Fatalf("unparsable RTCP not relayed: %d bytes, %v", n, err)
	}
	if caller, _ := s.Stats(); caller.Report.Lost != -1 || caller.RTCP != 3 {
		t.Fatalf("after a report of -1 lost and junk: %+v, %d RTCP", caller.Report, caller.RTCP)
	}
}

func sendRTCP(t *testing.T, e *endpoint, port int, p rtcp.Packet) {
	t.Helper()
	raw, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.conn.WriteToUDP(raw, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}); err != nil {
		t.Fatal(err)
	}
}

func recvRTCP(t *testing.T, e *endpoint) rtcp.Packet {
	t.Helper()
	buf := make([]byte, 1500)
	e.conn.SetReadDeadline(time.Now().Add(time.Second))
	n, _, err := e.conn.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("no RTCP relayed: %v", err)
	}
	ps, err := rtcp.Unmarshal(buf[:n])
	if err != nil || len(ps) == 0 {
		t.Fatalf("relayed RTCP does not parse: %v", err)
	}
	return ps[0]
}

// Jitter is counted in the clock rate the descriptions give the payload type: opus runs at
// 48 kHz, so packets 20 ms apart carry timestamps 960 apart and show no jitter.
func TestRelayJitterUsesTheClockRate(t *testing.T) {
	r := newTestRelay(t, 2, Config{})
	a, b := newEndpoint(t), newEndpoint(t)
	opus := func(e *endpoint) []byte {
		return fmt.Appendf(nil, "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
			"m=audio %d RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n", e.port())
	}
	s, pa, _ := callSessionWith(t, r, opus(a), opus(b))
	start := time.Now()
	for i := range 10 {
		time.Sleep(time.Until(start.Add(time.Duration(i) * 20 * time.Millisecond)))
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: uint16(i), Timestamp: uint32(i) * 960, SSRC: 5}, Payload: []byte("x")}
		raw, _ := p.Marshal()
		a.conn.WriteToUDP(raw, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: pa})
		b.recv(time.Second)
	}
	// Counted at 8 kHz the same packets would show about 40 ms.
	if caller, _ := s.Stats(); caller.Packets != 10 || caller.Jitter > 5 {
		t.Fatalf("%d packets, jitter %.1f ms: want 10 and under 5 ms at 48 kHz", caller.Packets, caller.Jitter)
	}
}

// A re-INVITE (or a transfer) often brings a new SSRC with a new random sequence number: packets
// go on being relayed, and the jump is not counted as loss; gaps in the new sequence are.
func TestRelaySSRCChangeOnReinvite(t *testing.T) {
	r := newTestRelay(t, 2, Config{})
	a, b := newEndpoint(t), newEndpoint(t)
	s, pa, _ := callSession(t, r, a, b)
	send := func(ssrc uint32, seq uint16) {
		t.Helper()
		p := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: ssrc}, Payload: []byte("x")}
		raw, _ := p.Marshal()
		a.conn.WriteToUDP(raw, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: pa})
		if got, _ := b.recv(time.Second); got != "x" {
			t.Fatalf("SSRC %x sequence %d not relayed", ssrc, seq)
		}
	}
	for seq := uint16(100); seq < 103; seq++ {
		send(1, seq)
	}
	if _, err := s.Rewrite(true, a.sdp("")); err != nil { // the re-INVITE's offer
		t.Fatal(err)
	}
	send(2, 40000)
	send(2, 40001)
	if st, _ := s.Stats(); st.Packets != 5 || st.Lost != 0 {
		t.Fatalf("after the SSRC change: %+v, want 5 packets, none lost", st)
	}
	send(2, 40003) // 40002 is missing
	if st, _ := s.Stats(); st.Packets != 6 || st.Lost != 1 {
		t.Fatalf("after a gap in the new stream: %+v, want 6 packets, 1 lost", st)
	}
}
