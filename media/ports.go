package media

import (
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// ErrNoPorts is returned when every RTP port pair of the range is in use: the call cannot get
// media and should be refused (503).
var ErrNoPorts = errors.New("media: no free RTP port in the range")

// PortQuarantine is how long a released pair rests before it is handed out again, unless every
// other pair is in use: stray packets of the call that ended, and a host that kept sending to
// it, do not meet the next call on the same ports.
const PortQuarantine = 10 * time.Second

// Ports hands out RTP/RTCP port pairs from a range: RTP on an even port, RTCP on the odd port
// above it (RFC 3550 §11).
//
// Pairs are picked at random among the free ones (ChaCha8 seeded from crypto/rand), so the pair
// of the next call cannot be told from the last one's: handed out in order, a host that sprays
// the next ports meets every new call. A released pair rests for PortQuarantine before it can be
// picked again; when nothing else is free, the pair that has rested longest is taken, so the
// quarantine never refuses a call. Random ports keep calls from being guessed, not from being
// found: a port scan tells bound ports from closed ones (ICMP). What keeps a stranger out of a
// call it found is the relay's source learning (docs/architecture.md, "Threat model").
type Ports struct {
	ip     net.IP
	lo, hi int

	mu         sync.Mutex
	rng        *rand.Rand
	free       []int     // even base ports ready to hand out, in no order
	resting    []resting // released pairs, oldest first
	quarantine time.Duration
	inUse      int
}

// resting is a released pair waiting out its quarantine.
type resting struct {
	base  int
	since time.Time
}

// NewPorts returns the pairs of lo-hi (inclusive) on ip. lo is rounded up to even; the range must
// hold at least one pair.
func NewPorts(ip net.IP, lo, hi int) (*Ports, error) {
	if lo%2 == 1 {
		lo++
	}
	if lo < 1024 || hi > 65535 || hi < lo+1 {
		return nil, fmt.Errorf("media: port range %d-%d: want an even start of at least 1024 and at least one pair up to 65535", lo, hi)
	}
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("media: seeding the port picker: %w", err)
	}
	p := &Ports{ip: ip, lo: lo, hi: hi, rng: rand.New(rand.NewChaCha8(seed)), quarantine: PortQuarantine}
	for base := lo; base+1 <= hi; base += 2 {
		p.free = append(p.free, base)
	}
	return p, nil
}

// Pair is an RTP socket and the RTCP socket beside it.
type Pair struct {
	Port      int // the RTP port; RTCP is Port+1
	rtp, rtcp *socket
	ports     *Ports
	once      sync.Once
}

// Allocate binds a free pair picked at random. A pair another program holds is skipped (and tried
// again after a quarantine); when none can be bound, ErrNoPorts.
func (p *Ports) Allocate() (*Pair, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	p.wake(now)
	for tries := len(p.free) + len(p.resting); tries > 0; tries-- {
		base, ok := p.take()
		if !ok {
			break
		}
		rtp, err := listen(p.ip, base)
		if err != nil {
			p.rest(base, now)
			continue
		}
		rtcp, err := listen(p.ip, base+1)
		if err != nil {
			rtp.close()
			p.rest(base, now)
			continue
		}
		p.inUse++
		return &Pair{rtp: rtp, rtcp: rtcp, Port: base, ports: p}, nil
	}
	return nil, ErrNoPorts
}

// wake makes the pairs whose quarantine is over free again.
func (p *Ports) wake(now time.Time) {
	n := 0
	for n < len(p.resting) && now.Sub(p.resting[n].since) >= p.quarantine {
		p.free = append(p.free, p.resting[n].base)
		n++
	}
	p.resting = p.resting[n:]
}

// take removes a pair to try: a free one at random, else the one resting longest.
func (p *Ports) take() (int, bool) {
	if n := len(p.free); n > 0 {
		i := p.rng.IntN(n)
		base := p.free[i]
		p.free[i] = p.free[n-1]
		p.free = p.free[:n-1]
		return base, true
	}
	if len(p.resting) > 0 {
		base := p.resting[0].base
		p.resting = p.resting[1:]
		return base, true
	}
	return 0, false
}

// rest puts a pair into quarantine.
func (p *Ports) rest(base int, now time.Time) {
	p.resting = append(p.resting, resting{base: base, since: now})
}

// Close closes both sockets and returns the pair to the range, to rest for PortQuarantine. It is
// safe to call more than once.
func (pr *Pair) Close() {
	pr.once.Do(func() {
		pr.rtp.close()
		pr.rtcp.close()
		p := pr.ports
		p.mu.Lock()
		p.rest(pr.Port, time.Now())
		p.inUse--
		p.mu.Unlock()
	})
}

// Free returns how many pairs are free, resting ones included (they are handed out when nothing
// else is free).
func (p *Ports) Free() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free) + len(p.resting)
}

// InUse returns how many pairs are allocated.
func (p *Ports) InUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inUse
}

// IP returns the address the pairs are bound to.
func (p *Ports) IP() net.IP { return p.ip }
