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
// BenchmarkRelayPath is the relay's own work per packet (classify, latch check, statistics,
// DTMF check, destination), without system calls. BenchmarkRelaySyscalls is the floor any
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
