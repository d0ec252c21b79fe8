package pbx

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Accept back-off, as net/http's Server.Serve does it: 5 ms doubling to 1 s.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// listener is what the PBX hands to sipgo's ServeTCP (and ServeTLS) instead of the bound listener. sipgo's accept
// loop (sip/transport_tcp.go, TransportTCP.Serve) returns on the first Accept error and nothing
// restarts it: one EMFILE (out of file descriptors) ended SIP over TCP for the life of the
// process. listener.Accept returns only once the listener is closed. Any other error is retried
// after a back-off, logged at most once per logEvery, counted, and reported by PBX.Health while it
// lasts. Accepted connections are admitted by the connection table (limits) and come back
// wrapped (deadlines).
type listener struct {
	net.Listener
	conns     *connTable
	log       *slog.Logger
	closed    chan struct{}
	closeOnce sync.Once
	now       func() time.Time // time.Now; tests may move it
	// tlsConfig, when set, makes this the TLS listener: each admitted connection is a TLS server
	// connection, whose handshake trackedConn runs under Config.TLSHandshakeTimeout.
	tlsConfig *tls.Config

	// An episode of accept errors lasts until none has come for failingFor. Out of descriptors,
	// accepts fail and succeed in turns as connections come and go: the episode spans them.
	mu        sync.Mutex
	lastErr   error     // the episode's last error
	lastErrAt time.Time // when it happened
	since     time.Time // the episode's first error
	failures  int       // errors in the episode
	recovered bool      // an accept worked since the last error
	// One line per logEvery for errors and one for recoveries.
	failLog, okLog sometimes
}

// failingFor is how long after its last accept error the listener counts as failing. A failing
// accept is retried at least every acceptBackoffMax; no error for twice that means the retry is
// waiting for a connection, not failing.
const failingFor = 2 * acceptBackoffMax

func newListener(l net.Listener, conns *connTable, log *slog.Logger) *listener {
	return &listener{Listener: l, conns: conns, log: log, closed: make(chan struct{}), now: time.Now,
		failLog: sometimes{every: logEvery}, okLog: sometimes{every: logEvery}}
}

// Accept waits for the next connection that the limits admit. It fails only when the listener is
// closed.
func (l *listener) Accept() (net.Conn, error) {
	var delay time.Duration
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || l.isClosed() {
				return nil, err
			}
			delay = min(max(2*delay, acceptBackoffMin), acceptBackoffMax)
			l.failed(err, delay)
			if timer == nil {
				timer = time.NewTimer(delay)
			} else {
				timer.Reset(delay)
			}
			select {
			case <-timer.C:
			case <-l.closed:
				return nil, net.ErrClosed
			}
			continue
		}
		delay = 0
		l.accepted()
		if l.tlsConfig != nil {
			// No I/O here: the handshake runs on the connection's reading goroutine, so a slow
			// client holds up only itself, never the accept loop.
			c = tls.Server(c, l.tlsConfig)
		}
		if tc := l.conns.admit(c); tc != nil {
			return tc, nil
		}
	}
}

func (l *listener) failed(err error, delay time.Duration) {
	l.conns.metrics.accept.Inc()
	now := l.now()
	l.mu.Lock()
	if l.failures == 0 || now.Sub(l.lastErrAt) > failingFor {
		l.since, l.failures = now, 0
	}
	l.failures++
	l.lastErr, l.lastErrAt, l.recovered = err, now, false
	n, since := l.failures, l.since
	l.mu.Unlock()
	if ok, held := l.failLog.allow(now); ok {
		l.log.Error("tcp accept failing; backing off", "error", err, "retry_in", delay,
			"errors", n, "failing_for", now.Sub(since).Round(time.Millisecond), "not_logged", held)
	}
}

func (l *listener) accepted() {
	l.mu.Lock()
	first := l.failures > 0 && !l.recovered
	l.recovered = true
	n, since := l.failures, l.since
	l.mu.Unlock()
	if !first {
		return
	}
	now := l.now()
	if ok, held := l.okLog.allow(now); ok {
		l.log.Warn("tcp accept working again", "errors", n, "failing_for", now.Sub(since).Round(time.Millisecond),
			"not_logged", held)
	}
}

// health is nil while the listener accepts, or waits to, and has had no accept error for
// failingFor.
func (l *listener) health() error {
	if l.isClosed() {
		return ErrListenerStopped
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.failures == 0 || now.Sub(l.lastErrAt) > failingFor {
		return nil
	}
	return fmt.Errorf("%w: %v (%d errors since %s ago, the last %s ago)", ErrAcceptFailing, l.lastErr, l.failures,
		now.Sub(l.since).Round(time.Millisecond), now.Sub(l.lastErrAt).Round(time.Millisecond))
}

func (l *listener) isClosed() bool {
	select {
	case <-l.closed:
		return true
	default:
		return false
	}
}

// Close stops Accept, also during a back-off. It is safe to call more than once.
func (l *listener) Close() error {
	err := net.ErrClosed
	l.closeOnce.Do(func() {
		close(l.closed)
		err = l.Listener.Close()
	})
	return err
}
