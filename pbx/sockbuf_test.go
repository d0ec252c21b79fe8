package pbx

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestUDPReadBuffer: the SIP UDP socket gets the receive buffer asked for, within the kernel's
// limit (net.core.rmem_max).
func TestUDPReadBuffer(t *testing.T) {
	p, err := New(Config{SIP: "127.0.0.1:0", Database: "sqlite::memory:", UDPReadBuffer: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	got, ok := readBuffer(p.udp.(*net.UDPConn))
	if !ok {
		t.Skip("the socket's buffer cannot be read here")
	}
	if max := rmemMax(t); got < min(1<<20, max) {
		t.Fatalf("receive buffer %d bytes, want at least %d (rmem_max %d)", got, min(1<<20, max), max)
	}
}

func rmemMax(t *testing.T) int {
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		t.Skip("no /proc/sys/net/core/rmem_max")
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Skip(err)
	}
	return n
}
