package pbx

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
)

// Connections: every TCP connection a phone (or anyone) opens to the PBX is accepted by the
// listener in tcplisten.go, admitted here against the connection limits, and wrapped in a
// trackedConn (trackedconn.go) whose read deadlines close it when it idles or drips.
// docs/architecture.md ("Connections") explains the rules and why.

// Reasons a connection is refused or closed by the PBX, the "reason" label of the metrics.
const (
	reasonTotal     = "max_connections" // refused: MaxConnections reached
	reasonPerSource = "max_per_source"  // refused: MaxConnectionsPerSource reached for its source
	reasonIdle      = "idle"            // closed: no message for ConnIdleTimeout and no registration
	reasonSlowRead  = "slow_message"    // closed: a message not complete MessageTimeout after it began
	reasonSlowWrite = "slow_write"      // closed: the peer took longer than MessageTimeout to take one
	reasonHandshake = "tls_handshake"   // closed: the TLS handshake failed or took longer than TLSHandshakeTimeout
)

// registrationLookupTimeout bounds the store look-up that decides whether an idle connection
// carries a registration.
const registrationLookupTimeout = 3 * time.Second

// connTable admits, counts and tracks the PBX's accepted connections. sipgo owns each
// connection's reading goroutine and closes the connection; the table only learns of it through
// trackedConn.Close.
type connTable struct {
	maxTotal     int // <= 0: no limit
	maxPerSource int // <= 0: no limit
	idle         time.Duration
	message      time.Duration
	handshake    time.Duration // TLS connections: the longest handshake
	trusted      func(netip.Addr) bool
	// registeredUntil says until when a registration of one of aors lives on the connection
	// from source (the zero time: none).
	registeredUntil func(ctx context.Context, aors []string, source string) (time.Time, error)
	stop            <-chan struct{} // closed at shutdown: look-ups end
	log             *slog.Logger
	metrics         connMetrics

	mu        sync.Mutex
	conns     map[string]*trackedConn // by transport and remote address (connKey)
	perSource map[netip.Addr]int      // open connections by source bucket (sourceBucket)
	refusals  sometimes
}

// connMetrics are the connection series, in the PBX's registry.
type connMetrics struct {
	refused *prometheus.CounterVec
	closed  *prometheus.CounterVec
	accept  prometheus.Counter // accept errors
}

func newConnTable(cfg Config, trusted func(netip.Addr) bool, reg *prometheus.Registry, log *slog.Logger) *connTable {
	t := &connTable{
		maxTotal: cfg.MaxConnections, maxPerSource: cfg.MaxConnectionsPerSource,
		idle: cfg.ConnIdleTimeout, message: cfg.MessageTimeout, handshake: cfg.TLSHandshakeTimeout, trusted: trusted, log: log,
		conns: make(map[string]*trackedConn), perSource: make(map[netip.Addr]int),
		refusals: sometimes{every: logEvery},
	}
	tcp := prometheus.Labels{"transport": "tcp"}
	t.metrics = connMetrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbxkit_sip_connections_refused_total", ConstLabels: tcp,
			Help: "Connections (TCP and TLS) closed as soon as accepted, by reason: max_connections (MaxConnections reached), max_per_source (MaxConnectionsPerSource reached for the source).",
		}, []string{"reason"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbxkit_sip_connections_closed_total", ConstLabels: tcp,
			Help: "Connections (TCP and TLS) the PBX closed, by reason: idle (ConnIdleTimeout, no registration), slow_message and slow_write (MessageTimeout), tls_handshake (failed or over TLSHandshakeTimeout).",
		}, []string{"reason"}),
		accept: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pbxkit_sip_accept_errors_total", ConstLabels: tcp,
			Help: "Errors accepting connections (out of file descriptors and the like); the listener backs off and goes on.",
		}),
	}
	open := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pbxkit_sip_connections", ConstLabels: tcp, Help: "Open connections accepted by the SIP listeners (TCP and TLS).",
	}, func() float64 { return float64(t.open()) })
	reg.MustRegister(t.metrics.refused, t.metrics.closed, t.metrics.accept, open)
	return t
}

// open is the number of open accepted connections.
func (t *connTable) open() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

// sourceBucket is what MaxConnectionsPerSource counts by: the IPv4 address, or the /64 of an
// IPv6 address (one subscriber gets a whole /64 and can pick any address in it).
func sourceBucket(ip netip.Addr) netip.Addr {
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// connKey names a connection in the table as sipgo names a message's transport and source: the
// same address may connect to the TCP and the TLS listener at once.
func connKey(transport, addr string) string { return transport + " " + addr }

// admit counts c in, or closes it when a limit is reached (nil then). A *tls.Conn is a connection
// of the TLS listener, still to shake hands.
func (t *connTable) admit(c net.Conn) net.Conn {
	key := c.RemoteAddr().String()
	var ip netip.Addr
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ip = ta.AddrPort().Addr().Unmap()
	}
	exempt := !ip.IsValid() || t.trusted(ip)
	bucket := sourceBucket(ip)
	now := time.Now()
	tc := &trackedConn{Conn: c, t: t, key: key, mapKey: connKey("TCP", key), lastActive: now}
	if tlsConn, ok := c.(*tls.Conn); ok {
		tc.tls, tc.mapKey = tlsConn, connKey("TLS", key)
	}

	t.mu.Lock()
	reason := ""
	switch {
	case t.maxTotal > 0 && len(t.conns) >= t.maxTotal:
		reason = reasonTotal
	case !exempt && t.maxPerSource > 0 && t.perSource[bucket] >= t.maxPerSource:
		reason = reasonPerSource
	default:
		if !exempt {
			tc.bucket = bucket
			t.perSource[bucket]++
		}
		t.conns[tc.mapKey] = tc
	}
	t.mu.Unlock()
	if reason == "" {
		return tc
	}
	// Reset rather than close: no TIME_WAIT left on the PBX's side for a flood of these.
	raw := c
	if tc.tls != nil {
		raw = tc.tls.NetConn()
	}
	if tcp, ok := raw.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	t.metrics.refused.WithLabelValues(reason).Inc() // before the reset: whoever sees it sees the count
	c.Close()
	if ok, held := t.refusals.allow(now); ok {
		t.log.Warn("tcp connection refused", "reason", reason, "src", key,
			"max_per_source", t.maxPerSource, "max_connections", t.maxTotal, "more_refused", held)
	}
	return nil
}

// release forgets a closed connection.
func (t *connTable) release(c *trackedConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns[c.mapKey] == c {
		delete(t.conns, c.mapKey)
	}
	if c.bucket.IsValid() {
		if t.perSource[c.bucket]--; t.perSource[c.bucket] <= 0 {
			delete(t.perSource, c.bucket)
		}
	}
}

// messageRead is a sipgo transport-layer handler: it runs on the reading goroutine of the
// connection a message came from, right after sipgo framed the message. It tells the connection
// that its message is complete, which is how the deadlines know a message from a drip.
func (t *connTable) messageRead(msg sip.Message) {
	tr := msg.Transport()
	if tr != "TCP" && tr != "TLS" {
		return
	}
	t.mu.Lock()
	c := t.conns[connKey(tr, msg.Source())]
	t.mu.Unlock()
	if c == nil {
		return
	}
	// The transaction layer handles the message on another goroutine already: only read what the
	// parser set (the To header is parsed eagerly), never anything that parses lazily or writes.
	aor := ""
	if req, ok := msg.(*sip.Request); ok && req.Method == sip.REGISTER {
		if to := req.To(); to != nil {
			aor = to.Address.User
		}
	}
	c.messageDone(aor)
}

// lookupRegistration asks the store whether one of aors is registered over the connection.
func (t *connTable) lookupRegistration(aors []string, source string) (time.Time, error) {
	ctx, cancel := context.WithTimeout(context.Background(), registrationLookupTimeout)
	defer cancel()
	go func() {
		select {
		case <-t.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return t.registeredUntil(ctx, aors, source)
}

// registeredUntil is when the last registration of aors made over a connection from source
// expires, in the local clock (the zero time: none lives on it).
func (p *PBX) registeredUntil(ctx context.Context, aors []string, source string) (time.Time, error) {
	var until time.Time
	for _, aor := range aors {
		bs, err := p.store.Bindings(ctx, aor)
		if err != nil {
			return time.Time{}, err
		}
		for _, b := range bs {
			// Made over a connection (TCP or TLS) from that address.
			if b.Source == source && !strings.EqualFold(b.Transport, "udp") {
				// Bindings expire by p.now (WithClock); deadlines run on the wall clock.
				until = latest(until, time.Now().Add(b.ExpiresAt.Sub(p.now())))
			}
		}
	}
	return until, nil
}

// logEvery is how often a repeated warning (accept errors, refused connections) is logged.
const logEvery = 10 * time.Second
