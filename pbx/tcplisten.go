package pbx

import (
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

// listener is what the PBX hands to sipgo's ServeTCP instead of the bound listener. sipgo's accept
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

	mu        sync.Mutex
	lastErr   error     // the last accept error of the current run of failures
	lastErrAt time.Time // when it happened
	since     time.Time // first failure of the current run; zero while accepting works
	failures  int       // in the current run
	logs      sometimes
}

func newListener(l net.Listener, conns *connTable, log *slog.Logger) *listener {
	return &listener{Listener: l, conns: conns, log: log, closed: make(chan struct{}), now: time.Now,
		logs: sometimes{every: logEvery}}
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
		if tc := l.conns.admit(c); tc != nil {
			return tc, nil
		}
	}
}

func (l *listener) failed(err error, delay time.Duration) {
	l.conns.metrics.accept.Inc()
	now := l.now()
	l.mu.Lock()
	if l.failures == 0 {
		l.since = now
	}
	l.failures++
	l.lastErr, l.lastErrAt = err, now
	n, since := l.failures, l.since
	ok, held := l.logs.allow(now)
	l.mu.Unlock()
	if ok {
		l.log.Error("tcp accept failing; backing off", "error", err, "retry_in", delay,
			"failures", n, "failing_for", now.Sub(since).Round(time.Millisecond), "not_logged", held)
	}
}

func (l *listener) accepted() {
	l.mu.Lock()
	n, since := l.failures, l.since
	if n > 0 {
		l.failures, l.lastErr, l.since = 0, nil, time.Time{}
		l.logs = sometimes{every: logEvery}
	}
	l.mu.Unlock()
	if n > 0 {
		l.log.Warn("tcp accept working again", "failures", n, "failed_for", l.now().Sub(since).Round(time.Millisecond))
	}
}

// health is nil while the listener accepts, or waits to. A failing accept retries at least every
// acceptBackoffMax, so a failure older than twice that, with none after it, means the last retry
// is blocked waiting for a connection: it works again.
func (l *listener) health() error {
	if l.isClosed() {
		return ErrListenerStopped
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.failures == 0 || now.Sub(l.lastErrAt) > 2*acceptBackoffMax {
		return nil
	}
	return fmt.Errorf("%w: %v (%d errors, the first %s ago)", ErrAcceptFailing, l.lastErr, l.failures,
		now.Sub(l.since).Round(time.Millisecond))
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
