package pbx

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pbxkit/pbxkit/store"
)

// failingListener fails Accept with EMFILE while failures is above zero, counting down, as a
// process out of file descriptors does.
type failingListener struct {
	net.Listener
	failures atomic.Int64
}

func (f *failingListener) Accept() (net.Conn, error) {
	if f.failures.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: f.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	f.failures.Store(0)
	return f.Listener.Accept()
}

func testListener(t *testing.T, failures int64) (*listener, *failingListener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &failingListener{Listener: ln}
	f.failures.Store(failures)
	conns := newConnTable(Config{}.withDefaults(), func(netip.Addr) bool { return false }, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	l := newListener(f, conns, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { l.Close() })
	return l, f
}

// TestListenerBacksOff: accept errors are retried with a growing pause (5, 10, 20, 40 ms),
// counted, and reported by health; the next connection is then accepted, and health is clear
// once no error has come for failingFor.
func TestListenerBacksOff(t *testing.T) {
	l, _ := testListener(t, 4)
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		c, err := l.Accept()
		done <- result{c, err}
	}()
	for l.health() == nil {
		if time.Since(start) > 5*time.Second {
			t.Fatal("accept errors not reported")
		}
		time.Sleep(time.Millisecond)
	}
	if err := l.health(); !errors.Is(err, ErrAcceptFailing) || !strings.Contains(err.Error(), "too many open files") {
		t.Fatalf("health while failing: %v", err)
	}
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	r := <-done
	if r.err != nil {
		t.Fatalf("Accept after the errors: %v", r.err)
	}
	r.c.Close()
	if took := time.Since(start); took < 70*time.Millisecond {
		t.Fatalf("4 failures retried within %v: no back-off", took)
	}
	if n := testutil.ToFloat64(l.conns.metrics.accept); n != 4 {
		t.Fatalf("%v accept errors counted, want 4", n)
	}
	later := time.Now().Add(failingFor + time.Millisecond)
	l.now = func() time.Time { return later }
	if err := l.health(); err != nil {
		t.Fatalf("health %v after the last error: %v", failingFor, err)
	}
}

// TestListenerCloseDuringBackOff: Close ends an Accept that is pausing, at once.
func TestListenerCloseDuringBackOff(t *testing.T) {
	l, _ := testListener(t, 1<<40)
	done := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		done <- err
	}()
	time.Sleep(300 * time.Millisecond) // pausing for 160-320 ms now
	closed := time.Now()
	l.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	if took := time.Since(closed); took > 200*time.Millisecond {
		t.Fatalf("Accept returned %v after Close", took)
	}
	if !errors.Is(l.health(), ErrListenerStopped) {
		t.Fatalf("health of a closed listener: %v", l.health())
	}
}

// TestListenerHealthClearsWhenErrorsStop: with no accept error for twice the longest pause, the
// retry is waiting for a connection, not failing: health is clear though none was accepted.
func TestListenerHealthClearsWhenErrorsStop(t *testing.T) {
	l, _ := testListener(t, 0)
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	l.failed(syscall.EMFILE, acceptBackoffMax)
	if !errors.Is(l.health(), ErrAcceptFailing) {
		t.Fatalf("health right after an error: %v", l.health())
	}
	now = now.Add(2*acceptBackoffMax + time.Millisecond)
	if err := l.health(); err != nil {
		t.Fatalf("health long after the last error: %v", err)
	}
}

// TestHealthWhileTCPAcceptFails: a running PBX whose TCP listener cannot accept says so in
// Health, keeps retrying, and serves the connection that waited once accepting works: a REGISTER
// over it gets 200 and Health is clear.
func TestHealthWhileTCPAcceptFails(t *testing.T) {
	p, err := New(Config{SIP: "127.0.0.1:0", Database: "sqlite::memory:", Domain: "pbx.test",
		Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	ext := &store.Extension{Number: "201", Enabled: true}
	if err := ext.SetPassword("pbx.test", "pw201"); err != nil {
		t.Fatal(err)
	}
	if err := p.owned.CreateExtension(context.Background(), ext); err != nil {
		t.Fatal(err)
	}
	fake := &failingListener{Listener: p.tcp.Listener}
	fake.failures.Store(1 << 40)
	p.tcp.Listener = fake
	if !errors.Is(p.Health(), ErrNotServing) {
		t.Fatalf("health before Run: %v", p.Health())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if !errors.Is(p.Health(), ErrNotServing) {
			t.Errorf("health after Shutdown: %v", p.Health())
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !errors.Is(p.Health(), ErrAcceptFailing) {
		if time.Now().After(deadline) {
			t.Fatalf("health while accept fails: %v", p.Health())
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("health: %v", p.Health())

	c, err := net.Dial("tcp", p.TCPAddr().String()) // waits in the kernel's queue
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "REGISTER sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK-emfile\r\nMax-Forwards: 70\r\n"+
		"From: <sip:201@pbx.test>;tag=e1\r\nTo: <sip:201@pbx.test>\r\nCall-ID: emfile@test\r\nCSeq: 1 REGISTER\r\n"+
		"Contact: <sip:201@%s;transport=tcp>\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n", c.LocalAddr(), c.LocalAddr())
	fake.failures.Store(0) // descriptors are back
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "SIP/2.0 200 ") {
		t.Fatalf("REGISTER once accepting works again: %q %v", line, err)
	}
	for deadline := time.Now().Add(2*failingFor + time.Second); p.Health() != nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("health after the listener recovered: %v", p.Health())
		}
	}
	if n := testutil.ToFloat64(p.conns.metrics.accept); n < 1 {
		t.Fatalf("accept errors counted: %v", n)
	}
}
