package pbx

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
)

// Connections: every TCP connection a phone (or anyone) opens to the PBX is accepted by the
// listener in tcplisten.go, admitted here against the connection limits, and wrapped in a
// trackedConn whose read deadlines close it when it idles or drips. docs/architecture.md
// ("Connections") explains the rules and why.

// Reasons a connection is refused or closed by the PBX, the "reason" label of the metrics.
const (
	reasonTotal     = "max_connections" // refused: MaxConnections reached
	reasonPerSource = "max_per_source"  // refused: MaxConnectionsPerSource reached for its source
	reasonIdle      = "idle"            // closed: no message for ConnIdleTimeout and no registration
	reasonSlowRead  = "slow_message"    // closed: a message not complete MessageTimeout after it began
	reasonSlowWrite = "slow_write"      // closed: the peer took longer than MessageTimeout to take one
	reasonHandshake = "tls_handshake"   // closed: the TLS handshake failed or took longer than TLSHandshakeTimeout
)

// maxAORsPerConn bounds the extensions remembered per connection for the registration check: a
// desk phone registers a few lines over one connection; a scanner trying names gets no more.
const maxAORsPerConn = 8

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
	c.Close()
	t.metrics.refused.WithLabelValues(reason).Inc()
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

// trackedConn is an accepted connection as sipgo sees it. Its reads carry the PBX's deadlines:
//   - between messages, ConnIdleTimeout after the last message either way (or the accept), or
//     until the registration that lives on it expires, whichever is later;
//   - once a message has begun (any byte but CR, LF or NUL between messages), MessageTimeout
//     after its first byte, however fast the bytes come.
//
// CRLF keep-alives (RFC 5626 §4.4.1) are not messages: they neither begin one nor refresh the idle
// deadline, so they keep a connection open only where a registration does. sipgo answers the
// double-CRLF ping itself. sipgo's own deadlines (TransportTCP.ReadTimeout, WriteTimeout) still
// apply when set: the earlier one wins.
type trackedConn struct {
	net.Conn
	t      *connTable
	key    string // remote address: sipgo's Message.Source of what arrives here
	mapKey string // its key in the table (connKey)
	// tls is the connection's TLS layer (Conn itself) on the TLS listener, nil on TCP. Its
	// handshake runs on the first Read, under the handshake timeout, before any deadline of the
	// PBX's: the deadlines then count plaintext SIP, so a keep-alive inside TLS is known as one.
	tls       *tls.Conn
	handshook bool       // the handshake is done; only the reading goroutine touches it
	bucket    netip.Addr // its per-source bucket; invalid when it does not count (trusted)
	once      sync.Once

	mu         sync.Mutex
	inMessage  bool
	msgStart   time.Time
	lastActive time.Time // accept, the end of the last message read, or the last message written
	keepUntil  time.Time // a registration lives on the connection until then
	aors       []string  // extensions named by REGISTERs over the connection
	userRead   time.Time // sipgo's read deadline
	userWrite  time.Time // sipgo's write deadline
}

// expiry is what a read deadline that passed means.
type expiry int

const (
	deadlineMoved expiry = iota // not passed after all (a registration found): read on
	deadlineUser                // sipgo's own deadline: return its timeout
	deadlineIdle
	deadlineMessage
)

// readDeadlineLocked is the deadline of the next read: the PBX's or sipgo's, the earlier.
func (c *trackedConn) readDeadlineLocked() time.Time {
	return earliest(c.ownReadDeadlineLocked(), c.userRead)
}

func (c *trackedConn) ownReadDeadlineLocked() time.Time {
	switch {
	case c.inMessage:
		if c.t.message > 0 {
			return c.msgStart.Add(c.t.message)
		}
	case c.t.idle > 0:
		return latest(c.lastActive.Add(c.t.idle), c.keepUntil)
	}
	return time.Time{}
}

// earliest is the earlier of two deadlines, the zero time being none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func (c *trackedConn) Read(b []byte) (int, error) {
	if c.tls != nil && !c.handshook {
		if err := c.handshake(); err != nil {
			return 0, err
		}
	}
	for {
		c.mu.Lock()
		d := c.readDeadlineLocked()
		c.mu.Unlock()
		if err := c.Conn.SetReadDeadline(d); err != nil {
			return 0, err
		}
		n, err := c.Conn.Read(b)
		if n > 0 {
			c.received(b[:n])
			return n, nil
		}
		if !isTimeout(err) {
			return n, err
		}
		switch c.expired(time.Now()) {
		case deadlineMoved:
			continue
		case deadlineUser:
			return 0, err
		case deadlineIdle:
			c.closedFor(reasonIdle)
		case deadlineMessage:
			c.closedFor(reasonSlowRead)
		}
		// io.EOF: sipgo ends its reader quietly and closes the connection.
		return 0, io.EOF
	}
}

// received notes bytes read: outside a message, anything but line ends and NULs begins one.
func (c *trackedConn) received(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.inMessage && hasMessageByte(b) {
		c.inMessage = true
		c.msgStart = time.Now()
	}
}

// hasMessageByte says whether b holds more than the line ends (keep-alives) and NULs that may
// stand between messages.
func hasMessageByte(b []byte) bool {
	for _, x := range b {
		if x != '\r' && x != '\n' && x != 0 {
			return true
		}
	}
	return false
}

// messageDone notes that sipgo framed a message; aor is the extension a REGISTER named.
//
// A REGISTER may have added, refreshed or removed a registration: what the connection was kept
// for is looked up again when it next idles, so a phone that unregisters does not keep its
// connection until the old expiry.
//
// A read may hold the end of one message and the beginning of the next: the next then counts
// from its following read, so a drip gains at most one ConnIdleTimeout.
func (c *trackedConn) messageDone(aor string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inMessage = false
	c.lastActive = time.Now()
	if aor == "" {
		return
	}
	c.keepUntil = time.Time{}
	if !slices.Contains(c.aors, aor) && len(c.aors) < maxAORsPerConn {
		c.aors = append(c.aors, aor)
	}
}

// expired decides what a read that timed out at now means. An idle connection over which an
// extension registered asks the store whether that registration still lives on it, and stays
// open until it expires; without an answer (the database away) it stays another idle period.
func (c *trackedConn) expired(now time.Time) expiry {
	c.mu.Lock()
	if !c.userRead.IsZero() && !now.Before(c.userRead) {
		c.mu.Unlock()
		return deadlineUser
	}
	own := c.ownReadDeadlineLocked()
	if own.IsZero() || now.Before(own) {
		c.mu.Unlock()
		return deadlineMoved
	}
	if c.inMessage {
		c.mu.Unlock()
		return deadlineMessage
	}
	aors := slices.Clone(c.aors)
	c.mu.Unlock()
	if len(aors) == 0 || c.t.registeredUntil == nil {
		return deadlineIdle
	}
	until, err := c.t.lookupRegistration(aors, c.key)
	if err != nil {
		c.t.log.Debug("registration look-up for an idle connection failed; keeping it", "src", c.key, "error", err)
		until = now.Add(c.t.idle)
	}
	if !until.After(now) {
		return deadlineIdle
	}
	c.mu.Lock()
	c.keepUntil = until
	c.mu.Unlock()
	return deadlineMoved
}

func (c *trackedConn) closedFor(reason string) {
	c.t.metrics.closed.WithLabelValues(reason).Inc()
	c.t.log.Debug("tcp connection closed", "reason", reason, "src", c.key)
}

// Write bounds the time one write may block by MessageTimeout: a peer that does not read what it
// is sent (a slow-read attack, a dead phone behind a full window) loses the connection.
func (c *trackedConn) Write(b []byte) (int, error) {
	own := time.Time{}
	if c.t.message > 0 {
		own = time.Now().Add(c.t.message)
	}
	c.mu.Lock()
	d := earliest(own, c.userWrite)
	c.mu.Unlock()
	if err := c.Conn.SetWriteDeadline(d); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(b)
	if n > 0 && hasMessageByte(b[:n]) {
		// A message of the PBX's (a request wants its answer over this connection; a keep-alive
		// pong does not count).
		c.mu.Lock()
		c.lastActive = time.Now()
		c.mu.Unlock()
	}
	if err != nil && isTimeout(err) && !own.IsZero() && !time.Now().Before(own) {
		// A timed-out write may have sent part of a message: the stream cannot go on.
		c.closedFor(reasonSlowWrite)
		c.Conn.Close()
	}
	return n, err
}

// SetReadDeadline records sipgo's deadline; Read combines it with the PBX's.
func (c *trackedConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.userRead = t
	d := c.readDeadlineLocked()
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(d)
}

// SetWriteDeadline records sipgo's deadline; Write combines it with the PBX's.
func (c *trackedConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.userWrite = t
	c.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

func (c *trackedConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.t.release(c) })
	return c.Conn.Close()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
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

// handshake runs the TLS handshake of a connection of the TLS listener, within
// TLSHandshakeTimeout. A failure (a timeout, a client that speaks no TLS, or one that rejects the
// certificate) closes the connection: io.EOF lets sipgo end its reader quietly.
func (c *trackedConn) handshake() error {
	if c.t.handshake > 0 {
		if err := c.Conn.SetDeadline(time.Now().Add(c.t.handshake)); err != nil {
			return err
		}
	}
	err := c.tls.Handshake()
	if err == nil {
		c.handshook = true
		// Write deadlines are set per write; the read deadline by the next Read.
		return c.Conn.SetDeadline(time.Time{})
	}
	c.t.metrics.closed.WithLabelValues(reasonHandshake).Inc()
	c.t.log.Debug("tls handshake failed", "src", c.key, "error", err)
	return io.EOF
}
