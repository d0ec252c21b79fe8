package pbx_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/pbx"
)

// tcpConn is a raw TCP connection to the PBX from a chosen local address, read synchronously.
type tcpConn struct {
	t testing.TB
	net.Conn
	stream *sip.ParserStream
	msgs   []sip.Message
}

// connectFrom connects to the PBX's TCP port from ip (127.0.0.1, 127.0.0.2, ...: all loopback on
// Linux); it skips the test where the system has no such address.
func connectFrom(t testing.TB, tp *testPBX, ip string) *tcpConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", tp.TCPAddr().String())
	if err != nil {
		if errors.Is(err, syscall.EADDRNOTAVAIL) {
			t.Skipf("cannot connect from %s: %v", ip, err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &tcpConn{t: t, Conn: c, stream: sip.NewParser().NewSIPStream()}
}

// recv returns the next SIP message, or fails the test after timeout.
func (c *tcpConn) recv(timeout time.Duration) sip.Message {
	c.t.Helper()
	c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 65535)
	for len(c.msgs) == 0 {
		n, err := c.Read(buf)
		if err != nil {
			c.t.Fatalf("reading from the PBX: %v", err)
		}
		if err := c.stream.ParseSIPStream(buf[:n], func(m sip.Message) { c.msgs = append(c.msgs, m) }); err != nil && !errors.Is(err, sip.ErrParseSipPartial) {
			c.t.Fatal(err)
		}
	}
	m := c.msgs[0]
	c.msgs = c.msgs[1:]
	return m
}

// waitClosed waits until the PBX closes the connection (EOF or reset), reading and discarding what
// comes, and says how long that took; it fails the test if the connection is still open at max.
func (c *tcpConn) waitClosed(max time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(max))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatalf("connection still open after %v", max)
		}
		return time.Since(start)
	}
}

// register sends a REGISTER for ext with a contact on this connection, answers the digest
// challenge with password (unless the source is trusted), and returns the final status.
func (c *tcpConn) register(ext, password string, expires int) int {
	c.t.Helper()
	callID := fmt.Sprintf("reg-%d@test", rand.Int64())
	local := c.LocalAddr().String()
	msg := func(cseq int, auth string) string {
		return fmt.Sprintf("REGISTER sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK-%d\r\nMax-Forwards: 70\r\n"+
			"From: <sip:%s@pbx.test>;tag=r%d\r\nTo: <sip:%s@pbx.test>\r\nCall-ID: %s\r\nCSeq: %d REGISTER\r\n"+
			"Contact: <sip:%s@%s;transport=tcp>\r\nExpires: %d\r\n%sContent-Length: 0\r\n\r\n",
			local, rand.Int64(), ext, cseq, ext, callID, cseq, ext, local, expires, auth)
	}
	c.send(msg(1, ""))
	res := c.recv(5 * time.Second).(*sip.Response)
	if res.StatusCode == 401 {
		a := authorize(c.t, res, reqSpec{Method: "REGISTER", URI: "sip:pbx.test"}, ext, password, pbx.DigestMD5)
		c.send(msg(2, a+"\r\n"))
		res = c.recv(5 * time.Second).(*sip.Response)
	}
	return res.StatusCode
}

func (c *tcpConn) send(s string) {
	c.t.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

// options is an OPTIONS request as sent from c.
func (c *tcpConn) options() string {
	return fmt.Sprintf("OPTIONS sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK-%d\r\nMax-Forwards: 70\r\n"+
		"From: <sip:100@pbx.test>;tag=o1\r\nTo: <sip:pbx.test>\r\nCall-ID: opt-%d@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
		c.LocalAddr(), rand.Int64(), rand.Int64())
}

// metricSum adds up the series of the metric name whose labels include want.
func metricSum(t testing.TB, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// eventually polls cond until it holds, or fails the test with what after timeout.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// openConns is the number of open TCP connections the PBX counts.
func openConns(t testing.TB, tp *testPBX) float64 {
	t.Helper()
	return metricSum(t, tp.Metrics(), "pbxkit_sip_connections", nil)
}

func TestConnectionDefaults(t *testing.T) {
	tp := startPBX(t, pbx.Config{})
	c := tp.Config()
	if c.MaxConnections != pbx.DefaultMaxConnections || c.MaxConnectionsPerSource != pbx.DefaultMaxConnectionsPerSource ||
		c.ConnIdleTimeout != pbx.DefaultConnIdleTimeout || c.MessageTimeout != pbx.DefaultMessageTimeout {
		t.Fatalf("connection settings %d %d %v %v, want the defaults", c.MaxConnections, c.MaxConnectionsPerSource,
			c.ConnIdleTimeout, c.MessageTimeout)
	}
	eventually(t, 5*time.Second, "a running PBX healthy", func() bool { return tp.Health() == nil })
}

// TestTCPFloodFromOneSource is issue 12's TCP exhaustion run, test-sized: one source opens many
// more idle connections than MaxConnectionsPerSource in a burst. The PBX keeps its limit and
// resets the rest at once; the listener goes on: a phone elsewhere registers over a new TCP
// connection meanwhile, and once the idle connections time out, the flooding address can
// register too.
func TestTCPFloodFromOneSource(t *testing.T) {
	const flood, limit = 400, pbx.DefaultMaxConnectionsPerSource
	tp := startPBX(t, pbx.Config{ConnIdleTimeout: time.Second})
	tp.addExt(t, "201", "pw201")
	tp.addExt(t, "202", "pw202")
	d := net.Dialer{Timeout: 5 * time.Second}
	var held []net.Conn
	for range flood {
		c, err := d.Dial("tcp", tp.TCPAddr().String())
		if err != nil {
			if isReset(err) {
				continue // refused (reset) before the dial returned
			}
			t.Fatalf("dial: %v", err)
		}
		held = append(held, c)
	}
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	refused := func() float64 {
		return metricSum(t, tp.Metrics(), "pbxkit_sip_connections_refused_total", map[string]string{"reason": "max_per_source"})
	}
	eventually(t, 5*time.Second, "refusals counted", func() bool { return refused() == flood-limit })
	if n := openConns(t, tp); n != limit {
		t.Fatalf("%v connections open, want the limit %d", n, limit)
	}
	if !bytes.Contains([]byte(tp.logs.String()), []byte("tcp connection refused")) {
		t.Fatal("refusals not logged")
	}

	// Another source is not affected: a phone registers over a new TCP connection.
	phone := connectFrom(t, tp, "127.0.0.2")
	if code := phone.register("201", "pw201", 600); code != 200 {
		t.Fatalf("REGISTER over TCP from another source during the flood: %d", code)
	}
	if err := tp.Health(); err != nil {
		t.Fatalf("health during the flood: %v", err)
	}

	// The flood's connections idle out; the phone's, carrying a registration, stays.
	eventually(t, 5*time.Second, "idle connections closed", func() bool { return openConns(t, tp) == 1 })
	if n := metricSum(t, tp.Metrics(), "pbxkit_sip_connections_closed_total", map[string]string{"reason": "idle"}); n != limit {
		t.Fatalf("%v connections closed as idle, want %d", n, limit)
	}
	again := connectFrom(t, tp, "127.0.0.1")
	if code := again.register("202", "pw202", 600); code != 200 {
		t.Fatalf("REGISTER over TCP from the flooding address afterwards: %d", code)
	}
	phone.send(phone.options())
	if res := phone.recv(5 * time.Second).(*sip.Response); res.StatusCode != 200 {
		t.Fatalf("OPTIONS over the registered connection: %d", res.StatusCode)
	}
}

// TestTCPConnectionLimits: trusted sources are exempt from the per-source limit, not from
// MaxConnections.
func TestTCPConnectionLimits(t *testing.T) {
	tp := startPBX(t, pbx.Config{MaxConnectionsPerSource: 2, MaxConnections: 5, Trusted: mustTrusted(t, "127.0.0.2")})
	for i := range 2 {
		c := connectFrom(t, tp, "127.0.0.1")
		c.send(c.options())
		if res := c.recv(5 * time.Second).(*sip.Response); res.StatusCode != 200 {
			t.Fatalf("connection %d: %d", i, res.StatusCode)
		}
	}
	expectRefused(t, tp, "127.0.0.1")
	for i := range 3 {
		c := connectFrom(t, tp, "127.0.0.2")
		c.send(c.options())
		if res := c.recv(5 * time.Second).(*sip.Response); res.StatusCode != 200 {
			t.Fatalf("trusted connection %d: %d", i, res.StatusCode)
		}
	}
	expectRefused(t, tp, "127.0.0.2")
	reg := tp.Metrics()
	if ps, tot := metricSum(t, reg, "pbxkit_sip_connections_refused_total", map[string]string{"reason": "max_per_source"}),
		metricSum(t, reg, "pbxkit_sip_connections_refused_total", map[string]string{"reason": "max_connections"}); ps != 1 || tot != 1 {
		t.Fatalf("refused: %v per source, %v total; want 1 and 1", ps, tot)
	}
}

// expectRefused connects from ip and expects the PBX to reset the connection at once (while the
// dial is under way, or right after).
func expectRefused(t testing.TB, tp *testPBX, ip string) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", tp.TCPAddr().String())
	if err != nil {
		if !isReset(err) {
			t.Fatal(err)
		}
		return
	}
	defer c.Close()
	(&tcpConn{t: t, Conn: c}).waitClosed(5 * time.Second)
}

func isReset(err error) bool {
	var se *os.SyscallError
	return errors.As(err, &se) && errors.Is(se, syscall.ECONNRESET)
}

func mustTrusted(t testing.TB, s string) []netip.Prefix {
	t.Helper()
	p, err := pbx.ParseTrusted(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTCPIdleConnectionClosed: a connection that carries no message is closed after
// ConnIdleTimeout; CRLF keep-alives (answered) do not keep it; messages do, until they stop.
func TestTCPIdleConnectionClosed(t *testing.T) {
	const idle = 300 * time.Millisecond
	tp := startPBX(t, pbx.Config{ConnIdleTimeout: idle})

	silent := connectFrom(t, tp, "127.0.0.1")
	if took := silent.waitClosed(5 * time.Second); took < idle-50*time.Millisecond {
		t.Fatalf("silent connection closed after %v, before the idle timeout %v", took, idle)
	}

	pinging := connectFrom(t, tp, "127.0.0.1")
	start := time.Now()
	pinging.send("\r\n\r\n")
	pong := make([]byte, 2)
	pinging.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(pinging, pong); err != nil || string(pong) != "\r\n" {
		t.Fatalf("keep-alive ping answered %q, %v", pong, err)
	}
	closed := make(chan time.Duration, 1)
	go func() { closed <- pinging.waitClosedQuiet(5 * time.Second) }()
pinging:
	for time.Since(start) < 10*idle {
		select {
		case <-closed:
			break pinging
		case <-time.After(idle / 10):
		}
		if _, err := pinging.Write([]byte("\r\n\r\n")); err != nil {
			<-closed
			break
		}
	}
	if took := time.Since(start); took > 6*idle {
		t.Fatalf("keep-alives kept an unregistered connection open for %v (idle timeout %v)", took, idle)
	}

	talking := connectFrom(t, tp, "127.0.0.1")
	start = time.Now()
	for time.Since(start) < 3*idle {
		talking.send(talking.options())
		if res := talking.recv(5 * time.Second).(*sip.Response); res.StatusCode != 200 {
			t.Fatalf("OPTIONS: %d", res.StatusCode)
		}
		time.Sleep(idle / 3)
	}
	talking.waitClosed(5 * time.Second)
	if n := metricSum(t, tp.Metrics(), "pbxkit_sip_connections_closed_total", map[string]string{"reason": "idle"}); n != 3 {
		t.Fatalf("%v connections closed as idle, want 3", n)
	}
}

// TestTCPSlowMessageCut: a request sent a byte at a time is cut off MessageTimeout after its
// first byte, though every byte came well within the idle timeout; a message sent in pieces
// quickly is served.
func TestTCPSlowMessageCut(t *testing.T) {
	const limit = 300 * time.Millisecond
	tp := startPBX(t, pbx.Config{MessageTimeout: limit, ConnIdleTimeout: time.Minute})

	quick := connectFrom(t, tp, "127.0.0.1")
	msg := quick.options()
	quick.send(msg[:10])
	time.Sleep(limit / 3)
	quick.send(msg[10:])
	if res := quick.recv(5 * time.Second).(*sip.Response); res.StatusCode != 200 {
		t.Fatalf("OPTIONS in two pieces: %d", res.StatusCode)
	}

	slow := connectFrom(t, tp, "127.0.0.1")
	msg = slow.options()
	start := time.Now()
	closed := make(chan time.Duration, 1)
	go func() { closed <- slow.waitClosedQuiet(10 * time.Second) }()
	sent := 0
	for sent < len(msg) {
		if _, err := slow.Write([]byte{msg[sent]}); err != nil {
			break // the PBX has closed it
		}
		sent++
		time.Sleep(20 * time.Millisecond)
	}
	took := <-closed
	if sent == len(msg) || took > limit+2*time.Second {
		t.Fatalf("slow request: %d of %d bytes sent, connection closed after %v", sent, len(msg), took)
	}
	if took < limit-50*time.Millisecond {
		t.Fatalf("closed after %v, before MessageTimeout %v", took, limit)
	}
	if n := metricSum(t, tp.Metrics(), "pbxkit_sip_connections_closed_total", map[string]string{"reason": "slow_message"}); n != 1 {
		t.Fatalf("%v connections closed as slow, want 1", n)
	}
	t.Logf("cut after %v, %d of %d bytes", time.Since(start), sent, len(msg))
}

// waitClosedQuiet is waitClosed for another goroutine: no test failure, max on timeout.
func (c *tcpConn) waitClosedQuiet(max time.Duration) time.Duration {
	start := time.Now()
	c.SetReadDeadline(start.Add(max))
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			return time.Since(start)
		}
	}
}

// TestTCPRegisteredConnectionStays: a phone's connection carrying its registration outlives the
// idle timeout many times over and receives the call to it; an unregistered connection opened
// beside it is closed meanwhile. Once the phone unregisters, its connection idles out too.
func TestTCPRegisteredConnectionStays(t *testing.T) {
	const idle = 300 * time.Millisecond
	tp, caller, _ := callPBX(t, pbx.Config{ConnIdleTimeout: idle}, 0)
	phone := b2buatest.NewTCPPhone(t, tp.TCPAddr().String())
	local := phone.Addr()
	cseq := 0
	register := func(expires int) {
		t.Helper()
		cseq++
		res := phone.Do(fmt.Sprintf("REGISTER sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK-%d\r\nMax-Forwards: 70\r\n"+
			"From: <sip:200@pbx.test>;tag=r1\r\nTo: <sip:200@pbx.test>\r\nCall-ID: stays@test\r\nCSeq: %d REGISTER\r\n"+
			"Contact: <sip:200@%s;transport=tcp>\r\nExpires: %d\r\nContent-Length: 0\r\n\r\n", local, rand.Int64(), cseq, local, expires))
		if res.StatusCode != 200 {
			t.Fatalf("REGISTER over TCP: %d", res.StatusCode)
		}
	}
	register(600)
	other := connectFrom(t, tp, "127.0.0.1")
	other.waitClosed(5 * time.Second)
	time.Sleep(4 * idle)

	msg, inv := invite(caller)
	caller.Send(msg)
	b := phone.WaitRequest(sip.INVITE)
	phone.Respond(b, 200, "OK", calleeSDP)
	ok := caller.WaitResponse(200)
	phone.WaitRequest(sip.ACK)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	hangUp(t, tp, caller, phone, inv, ok, 2)

	register(0)
	eventually(t, 5*time.Second, "the unregistered phone's connection closed", func() bool { return openConns(t, tp) == 0 })
}
