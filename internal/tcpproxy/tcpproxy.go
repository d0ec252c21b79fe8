// Package tcpproxy forwards TCP connections to a target and can cut them all, as a failed host
// would: the store's and the PBX's database-outage tests and the soak's database cut use it.
package tcpproxy

import (
	"io"
	"net"
	"sync"
)

// Proxy forwards every connection it accepts to its target.
type Proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{} // both ends of each forwarded connection
}

// New listens on listen ("127.0.0.1:0" for any port) and forwards to target until Close.
func New(listen, target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is where to connect instead of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.isDown() {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(c, up) {
			c.Close()
			up.Close()
			continue
		}
		p.wg.Add(2)
		go p.pipe(up, c)
		go p.pipe(c, up)
	}
}

func (p *Proxy) isDown() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.down
}

// track records a forwarded connection's two ends, unless the proxy went down meanwhile.
func (p *Proxy) track(c, up net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return false
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	return true
}

func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// SetDown cuts every connection and refuses new ones (true), or lets them through again. It
// returns how many connections it cut.
func (p *Proxy) SetDown(down bool) (cut int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		cut = len(p.conns) / 2
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
	return cut
}

// Open is the number of connections forwarded now.
func (p *Proxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns) / 2
}

// Close stops listening, cuts every connection and waits for the forwarding goroutines.
func (p *Proxy) Close() {
	p.ln.Close()
	p.SetDown(true)
	p.wg.Wait()
}
