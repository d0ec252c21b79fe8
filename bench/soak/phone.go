package main

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
)

// T1 of RFC 3261: requests over UDP are sent again after T1, 2*T1, ... up to T2, for 64*T1.
const (
	t1 = 500 * time.Millisecond
	t2 = 4 * time.Second
)

// phone is a SIP endpoint over UDP on 127.0.0.1: one socket, many calls at once (a leg per
// Call-ID). Callee phones register an extension; caller phones come from the trusted address.
type phone struct {
	s    *soak
	user string // the extension of a callee phone; "" for a caller phone
	port int
	down atomic.Bool // killed and not back yet

	mu   sync.Mutex
	conn *net.UDPConn
	legs map[string]*leg // by Call-ID
}

func newPhone(s *soak, user string) (*phone, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	p := &phone{s: s, user: user, conn: c, port: c.LocalAddr().(*net.UDPAddr).Port, legs: map[string]*leg{}}
	go p.read(c)
	return p, nil
}

func (p *phone) addr() string { return fmt.Sprintf("127.0.0.1:%d", p.port) }

func (p *phone) send(msg string) {
	p.mu.Lock()
	c := p.conn
	p.mu.Unlock()
	if c != nil {
		c.WriteToUDP([]byte(msg), p.s.pbx)
	}
}

func (p *phone) read(c *net.UDPConn) {
	buf := make([]byte, 65535)
	for {
		n, _, err := c.ReadFromUDP(buf)
		if err != nil {
			return
		}
		m, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
		if err != nil {
			p.s.count("phone: unparseable message from the PBX")
			continue
		}
		p.handle(m)
	}
}

func (p *phone) leg(callID string) *leg {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.legs[callID]
}

func (p *phone) addLeg(l *leg) {
	p.mu.Lock()
	p.legs[l.callID] = l
	p.mu.Unlock()
}

// forget drops a leg after a while: retransmissions of its last messages are still answered
// until then.
func (p *phone) forget(l *leg) {
	time.AfterFunc(40*time.Second, func() {
		p.mu.Lock()
		if p.legs[l.callID] == l {
			delete(p.legs, l.callID)
		}
		p.mu.Unlock()
	})
}

func (p *phone) handle(m sip.Message) {
	switch m := m.(type) {
	case *sip.Response:
		if l := p.leg(m.CallID().Value()); l != nil && !l.dead.Load() {
			l.onResponse(m)
		}
	case *sip.Request:
		l := p.leg(m.CallID().Value())
		_, hasTag := m.To().Params.Get("tag")
		if l == nil {
			switch {
			case m.Method == sip.INVITE && !hasTag:
				if l := p.s.calleeLeg(p, m); l != nil {
					go p.s.answer(l)
				}
			case m.Method == sip.ACK:
			default:
				p.respond(m, 481, "Call/Transaction Does Not Exist", "", "")
			}
			return
		}
		if l.dead.Load() {
			return // a killed callee answers nothing
		}
		switch m.Method {
		case sip.ACK:
			l.fire(&l.acked)
		case sip.BYE:
			p.respond(m, 200, "OK", l.localTag, "")
			l.fire(&l.byeIn)
		case sip.CANCEL:
			p.respond(m, 200, "OK", l.localTag, "")
			p.respond(l.inv, 487, "Request Terminated", l.localTag, "")
			l.fire(&l.byeIn)
		case sip.INVITE:
			if !hasTag { // our INVITE answer got lost: send it again
				if last := l.lastInvRes.Load(); last != nil {
					p.send(*last)
				}
				return
			}
			p.respond(m, 200, "OK", l.localTag, sdp(l.st.port)) // a re-INVITE: same media
		default:
			p.respond(m, 200, "OK", l.localTag, "")
		}
	}
}

// respond answers req; tag is the phone's To tag (added when the request has none).
func (p *phone) respond(req *sip.Request, code int, reason, tag, body string) string {
	res := sip.NewResponseFromRequest(req, code, reason, []byte(body))
	if _, has := req.To().Params.Get("tag"); !has && code > 100 && tag != "" {
		res.To().Params.Add("tag", tag)
	}
	if code >= 200 && code < 300 && (req.Method == sip.INVITE) {
		res.AppendHeader(sip.NewHeader("Contact", "<sip:"+p.user+"@"+p.addr()+">"))
	}
	if body != "" {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	msg := res.String()
	p.send(msg)
	return msg
}

// kill closes the phone's socket and every call on it, as a crashed phone: no BYE, no RTP. It
// comes back on the same port after d and registers again.
func (p *phone) kill(d time.Duration) {
	p.down.Store(true)
	p.mu.Lock()
	p.conn.Close()
	p.conn = nil
	legs := make([]*leg, 0, len(p.legs))
	for _, l := range p.legs {
		legs = append(legs, l)
	}
	p.mu.Unlock()
	for _, l := range legs {
		l.die()
	}
	time.AfterFunc(d, func() {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p.port})
		if err != nil {
			p.s.logf("phone %s: back on port %d: %v", p.user, p.port, err)
			return
		}
		p.mu.Lock()
		p.conn = c
		p.mu.Unlock()
		go p.read(c)
		// A phone tries again until the registrar takes it (the database may be away).
		for {
			err := p.register()
			if err == nil {
				break
			}
			p.s.logf("phone %s: register after restart: %v; again in 5 s", p.user, err)
			time.Sleep(5 * time.Second)
		}
		p.down.Store(false)
	})
}

// register binds the phone's extension to its address (from the trusted network: no challenge).
func (p *phone) register() error {
	l := newLeg(p, fmt.Sprintf("reg-%s-%d@soak", p.user, rand.Int64()), nil)
	p.addLeg(l)
	defer p.forget(l)
	branch := newBranch()
	msg := fmt.Sprintf("REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=%s;rport\r\nMax-Forwards: 70\r\n"+
		"From: <sip:%s@127.0.0.1>;tag=%s\r\nTo: <sip:%s@127.0.0.1>\r\nCall-ID: %s\r\nCSeq: 1 REGISTER\r\n"+
		"Contact: <sip:%s@%s>\r\nExpires: 7200\r\nContent-Length: 0\r\n\r\n",
		p.addr(), branch, p.user, l.localTag, p.user, l.callID, p.user, p.addr())
	res := waitFinal(l.request(msg, branch, false), 40*time.Second)
	if res == nil {
		return fmt.Errorf("no answer to REGISTER")
	}
	if res.StatusCode != 200 {
		return fmt.Errorf("REGISTER: %d %s", res.StatusCode, res.Reason)
	}
	return nil
}

// leg is one side of a call at a phone: its dialog and its media.
type leg struct {
	p        *phone
	c        *call // nil for registrations
	callID   string
	localTag string
	inv      *sip.Request // callee: the PBX's INVITE
	st       *stream
	dead     atomic.Bool // killed: answers nothing, sends nothing

	mu         sync.Mutex
	txs        map[string]*clientTx // our requests by Via branch
	ack        string               // caller: the ACK of the 2xx, sent again for each 2xx retransmission
	lastInvRes atomic.Pointer[string]

	acked, byeIn, gone chan struct{}
	fired              sync.Mutex
}

type clientTx struct {
	invite bool
	res    chan *sip.Response
	stop   chan struct{}
	once   sync.Once
}

func newLeg(p *phone, callID string, c *call) *leg {
	return &leg{p: p, c: c, callID: callID, localTag: sip.GenerateTagN(12), txs: map[string]*clientTx{},
		acked: make(chan struct{}), byeIn: make(chan struct{}), gone: make(chan struct{})}
}

// fire closes ch once.
func (l *leg) fire(ch *chan struct{}) {
	l.fired.Lock()
	defer l.fired.Unlock()
	select {
	case <-*ch:
	default:
		close(*ch)
	}
}

// die is the leg's phone gone: no more RTP, no more answers.
func (l *leg) die() {
	if l.dead.Swap(true) {
		return
	}
	l.fire(&l.gone)
	if l.st != nil {
		l.st.on.Store(false)
	}
	if l.c != nil {
		l.c.killed(time.Now())
	}
}

// request sends a request and sends it again (T1 doubling to T2) until an answer ends that: any
// answer for an INVITE, a final one otherwise; it gives up after 64*T1. Answers come on the
// channel.
func (l *leg) request(msg, branch string, invite bool) <-chan *sip.Response {
	tx := &clientTx{invite: invite, res: make(chan *sip.Response, 16), stop: make(chan struct{})}
	l.mu.Lock()
	l.txs[branch] = tx
	l.mu.Unlock()
	l.p.send(msg)
	go func() {
		wait := t1
		give := time.After(64 * t1)
		for {
			select {
			case <-tx.stop:
				return
			case <-give:
				return
			case <-time.After(wait):
				if l.dead.Load() {
					return
				}
				l.p.send(msg)
				l.p.s.count("retransmissions by the soak's phones")
				wait = min(2*wait, t2)
			}
		}
	}()
	return tx.res
}

func (l *leg) onResponse(res *sip.Response) {
	branch, _ := res.Via().Params.Get("branch")
	l.mu.Lock()
	tx := l.txs[branch]
	ack := l.ack
	l.mu.Unlock()
	if tx == nil {
		return
	}
	if tx.invite && res.StatusCode >= 200 && res.StatusCode < 300 && ack != "" {
		l.p.send(ack) // a retransmitted 2xx: our ACK was lost
		return
	}
	if tx.invite || res.StatusCode >= 200 {
		tx.once.Do(func() { close(tx.stop) })
	}
	select {
	case tx.res <- res:
	default:
	}
}

// waitFinal returns the first final answer on ch, or nil after d.
func waitFinal(ch <-chan *sip.Response, d time.Duration) *sip.Response {
	timeout := time.After(d)
	for {
		select {
		case res := <-ch:
			if res.StatusCode >= 200 {
				return res
			}
		case <-timeout:
			return nil
		}
	}
}

func newBranch() string { return fmt.Sprintf("z9hG4bK-soak%016x", rand.Uint64()) }

func sdp(port int) string {
	return fmt.Sprintf("v=0\r\no=- %d 1 IN IP4 127.0.0.1\r\ns=soak\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n", rand.Uint32(), port)
}

// sdpAudio returns the address of the m=audio stream of an SDP body.
func sdpAudio(body []byte) *net.UDPAddr {
	ip, port := net.IPv4(127, 0, 0, 1), 0
	for _, line := range strings.Split(string(body), "\n") {
		line = strings.TrimSpace(line)
		if a, ok := strings.CutPrefix(line, "c=IN IP4 "); ok {
			if parsed := net.ParseIP(a); parsed != nil {
				ip = parsed
			}
		}
		fmt.Sscanf(line, "m=audio %d", &port)
	}
	if port == 0 {
		return nil
	}
	return &net.UDPAddr{IP: ip, Port: port}
}

// contactURI is the URI of a message's Contact header.
func contactURI(m interface{ GetHeader(string) sip.Header }) string {
	if h, ok := m.GetHeader("Contact").(*sip.ContactHeader); ok {
		return h.Address.String()
	}
	return ""
}
