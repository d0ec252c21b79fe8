package pbx

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	rtmetrics "runtime/metrics"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestSourceLimiter(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	l := newSourceLimiter(5, 10, func() time.Time { return now })
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	n := 0
	for range 30 {
		if l.allow(a) {
			n++
		}
	}
	if n != 10 || !l.allow(b) {
		t.Fatalf("burst: %d allowed of 30, want 10; another source must not be held back", n)
	}
	now = now.Add(time.Second) // five more tokens
	n = 0
	for range 30 {
		if l.allow(a) {
			n++
		}
	}
	if n != 5 {
		t.Fatalf("after a second: %d allowed, want 5", n)
	}
}

func TestQuantileDelta(t *testing.T) {
	buckets := []float64{0, 0.001, 0.01, 0.1, 1}
	prev := &rtmetrics.Float64Histogram{Buckets: buckets, Counts: []uint64{100, 10, 0, 0}}
	cur := &rtmetrics.Float64Histogram{Buckets: buckets, Counts: []uint64{190, 20, 0, 10}}
	// Since prev: 90 in [0,1ms), 10 in [1,10ms), 10 in [100ms,1s): the 99th percentile lies in the last.
	if got := quantileDelta(prev, cur, 0.99); got != time.Second {
		t.Fatalf("p99 %v, want 1s (the last bucket's bound)", got)
	}
	if got := quantileDelta(prev, cur, 0.5); got != time.Millisecond {
		t.Fatalf("p50 %v, want 1ms", got)
	}
	if got := quantileDelta(cur, cur, 0.99); got != 0 {
		t.Fatalf("nothing new: %v, want 0", got)
	}
}

// runPBX starts a PBX on 127.0.0.1 for a test of the package's own.
func runPBX(t *testing.T, cfg Config) *PBX {
	t.Helper()
	cfg.SIP, cfg.Database, cfg.Domain = "127.0.0.1:0", "sqlite::memory:", "pbx.test"
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return p
}

func options(t *testing.T, c *net.UDPConn, to net.Addr, i int, toTag string) {
	t.Helper()
	msg := fmt.Sprintf("OPTIONS sip:200@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-o%d\r\nMax-Forwards: 70\r\n"+
		"From: <sip:100@pbx.test>;tag=f\r\nTo: <sip:200@pbx.test>%s\r\nCall-ID: opt-%d@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
		c.LocalAddr(), i, toTag, i)
	if _, err := c.WriteTo([]byte(msg), to); err != nil {
		t.Fatal(err)
	}
}

// answers reads responses until none comes for a while, by status.
func answers(c *net.UDPConn) map[int]int {
	got := map[int]int{}
	buf := make([]byte, 65535)
	for {
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := c.Read(buf)
		if err != nil {
			return got
		}
		if m, err := sip.ParseMessage(buf[:n]); err == nil {
			if res, ok := m.(*sip.Response); ok {
				got[res.StatusCode]++
				if res.StatusCode == 503 && res.GetHeader("Retry-After") == nil {
					got[-1]++
				}
			}
		}
	}
}

func udpClient(t *testing.T, last byte) *net.UDPConn {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, last)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestSourceRateLimit: one source sending more new requests than its burst gets the burst
// answered and the rest dropped, unanswered and counted; another source is served meanwhile.
func TestSourceRateLimit(t *testing.T) {
	p := runPBX(t, Config{SourceRate: 1, SourceBurst: 10})
	flood, other := udpClient(t, 1), udpClient(t, 2) // two sources
	for i := range 40 {
		options(t, flood, p.udp.LocalAddr(), i, "")
	}
	if got := answers(flood); got[200] != 10 {
		t.Fatalf("flooding source: answers %v, want ten 200s", got)
	}
	options(t, other, p.udp.LocalAddr(), 100, "")
	if got := answers(other); got[200] != 1 {
		t.Fatalf("another source: %v", got)
	}
	if n := testutil.ToFloat64(p.metrics.shed.WithLabelValues("source_rate")); n != 30 {
		t.Fatalf("shed counted %v, want 30", n)
	}
}

// TestOverloadSheds: while the PBX is overloaded, new requests get a stateless 503 with
// Retry-After, requests in a dialog still reach the PBX (481 here: no such dialog), and once the
// load is gone requests are served again at once.
func TestOverloadSheds(t *testing.T) {
	p := runPBX(t, Config{OverloadLatency: time.Hour}) // the gauge never trips by itself
	c := udpClient(t, 1)
	p.load.overloaded.Store(true)
	options(t, c, p.udp.LocalAddr(), 1, "")
	options(t, c, p.udp.LocalAddr(), 2, ";tag=in-dialog")
	got := answers(c)
	if got[503] != 1 || got[-1] != 0 || got[481] != 1 {
		t.Fatalf("overloaded: answers %v, want one 503 with Retry-After and the in-dialog request's 481", got)
	}
	p.load.overloaded.Store(false)
	options(t, c, p.udp.LocalAddr(), 3, "")
	if got := answers(c); got[200] != 1 {
		t.Fatalf("after the overload: %v, want 200", got)
	}
	if n := testutil.ToFloat64(p.metrics.shed.WithLabelValues("overload")); n != 1 {
		t.Fatalf("%v 503s counted, want 1", n)
	}
}
