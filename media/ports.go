package media

import (
	"errors"
	"fmt"
	"net"
	"sync"
)

// ErrNoPorts is returned when every RTP port pair of the range is in use: the call cannot get
// media and should be refused (503).
var ErrNoPorts = errors.New("media: no free RTP port in the range")

// Ports hands out RTP/RTCP port pairs from a range: RTP on an even port, RTCP on the odd port
// above it (RFC 3550 §11). Released pairs go to the back of the line, so a port is reused as late
// as possible and stray packets of an ended call do not reach the next one.
type Ports struct {
	ip     net.IP
	lo, hi int

	mu    sync.Mutex
	free  []int // even base ports, in the order they are handed out
	inUse int
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
	p := &Ports{ip: ip, lo: lo, hi: hi}
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

// Allocate binds the next free pair. A pair another program holds is skipped (and tried again
// later); when none can be bound, ErrNoPorts.
func (p *Ports) Allocate() (*Pair, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for range len(p.free) {
		base := p.free[0]
		p.free = p.free[1:]
		rtp, err := listen(p.ip, base)
		if err != nil {
			p.free = append(p.free, base)
			continue
		}
		rtcp, err := listen(p.ip, base+1)
		if err != nil {
			rtp.close()
			p.free = append(p.free, base)
			continue
		}
		p.inUse++
		return &Pair{rtp: rtp, rtcp: rtcp, Port: base, ports: p}, nil
	}
	return nil, ErrNoPorts
}

// Close closes both sockets and returns the pair to the range. It is safe to call more than once.
func (pr *Pair) Close() {
	pr.once.Do(func() {
		pr.rtp.close()
		pr.rtcp.close()
		p := pr.ports
		p.mu.Lock()
		p.free = append(p.free, pr.Port)
		p.inUse--
		p.mu.Unlock()
	})
}

// Free returns how many pairs are free.
func (p *Ports) Free() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free)
}

// InUse returns how many pairs are allocated.
func (p *Ports) InUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inUse
}

// IP returns the address the pairs are bound to.
func (p *Ports) IP() net.IP { return p.ip }
