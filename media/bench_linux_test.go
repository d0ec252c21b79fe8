//go:build linux

package media

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// The relay's CPU per packet, taken apart (docs/benchmarks.md):
//
//	go test -run XXX -bench 'Relay(Path|Syscalls)' -count 3 ./media
//
// BenchmarkRelayPath is the relay's own work per packet (classify, source check, statistics,
// DTMF check, destination), without system calls; BenchmarkRelayPathStranger the same for a
// packet of a host the relay does not take it from (dropped and counted: a flood's cost). BenchmarkRelaySyscalls is the floor any
// user-space relay pays on the machine: one recvfrom and one sendto of a 172-byte datagram on
// loopback, with no wake-up (nobody waits on the receiving socket).

func BenchmarkRelayPath(b *testing.B) {
	s := scratchSession(b, 41000, "m=audio 9 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n")
	src := netip.MustParseAddrPort("127.0.0.1:9")
	pkt, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 1}, Payload: make([]byte, 160)}).Marshal()
	var h rtp.Header
	var keys []keyPress
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		pkt[2], pkt[3] = byte(i>>8), byte(i)
		keys = s.fromRTPPort(s.a, pkt, src, &h, time.Now(), keys[:0])
	}
}

func BenchmarkRelayPathStranger(b *testing.B) {
	s := scratchSession(b, 41000, "m=audio 9 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n")
	pkt, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 1}, Payload: make([]byte, 160)}).Marshal()
	var h rtp.Header
	var keys []keyPress
	s.fromRTPPort(s.a, pkt, netip.MustParseAddrPort("127.0.0.1:9"), &h, time.Now(), keys) // the phone: learned
	stranger := netip.MustParseAddrPort("198.51.100.7:4000")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		pkt[2], pkt[3] = byte(i>>8), byte(i)
		keys = s.fromRTPPort(s.a, pkt, stranger, &h, time.Now(), keys[:0])
	}
	if st, _ := s.Stats(); st.Packets != 1 {
		b.Fatalf("%d packets taken, want only the phone's", st.Packets)
	}
}

func BenchmarkRelaySyscalls(b *testing.B) {
	lo := 41100
	x, err := listen(net.IPv4(127, 0, 0, 1), lo)
	if err != nil {
		b.Fatal(err)
	}
	defer x.close()
	y, err := listen(net.IPv4(127, 0, 0, 1), lo+1)
	if err != nil {
		b.Fatal(err)
	}
	defer y.close()
	dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(lo+1))
	pkt := make([]byte, 172)
	buf := make([]byte, maxPacket)
	b.ReportAllocs()
	for b.Loop() {
		if err := x.send(pkt, dst); err != nil {
			b.Fatal(err)
		}
		if _, _, err := y.recv(buf); err != nil {
			b.Fatal(err)
		}
	}
}
