package b2buatest

import (
	"net"
	"testing"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/internal/callmedia"
	"github.com/pbxkit/pbxkit/media"
)

// MediaRelay returns a media relay on 127.0.0.1 for a server's calls (b2bua.Config.Media), as
// the PBX runs it: pairs RTP/RTCP port pairs from a free range.
func MediaRelay(t testing.TB, pairs int) b2bua.Media {
	t.Helper()
	lo := freeRange(t, 2*pairs)
	ports, err := media.NewPorts(net.IPv4(127, 0, 0, 1), lo, lo+2*pairs-1)
	if err != nil {
		t.Fatal(err)
	}
	relay, err := media.NewRelay(media.Config{Ports: ports})
	if err != nil {
		t.Fatal(err)
	}
	return callmedia.New(relay)
}

// freeRange finds n free UDP ports in a row on 127.0.0.1, below the kernel's ephemeral range
// (32768 and up by default), so a socket bound to port 0 cannot take one between this probe and
// the relay's bind.
func freeRange(t testing.TB, n int) int {
	t.Helper()
	for base := 23000; base < 26000; base += 2 * ((n + 1) / 2) {
		ok := true
		for p := base; p < base+n; p++ {
			c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
			if err != nil {
				ok = false
				break
			}
			c.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range for the media relay")
	return 0
}
