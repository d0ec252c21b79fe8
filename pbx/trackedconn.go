package pbx

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// A tracked connection's deadlines: the reads and writes of an accepted connection, bounded so
// that it closes when it idles or drips, or when its peer does not read. conns.go admits and
// counts the connections; docs/architecture.md ("Connections") explains the rules.

// maxAORsPerConn bounds the extensions remembered per connection for the registration check: a
// desk phone registers a few lines over one connection; a scanner trying names gets no more.
const maxAORsPerConn = 8

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
