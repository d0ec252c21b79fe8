package main

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// call is one call the soak placed, with its plan and what became of it.
type call struct {
	n        int
	user     string // the caller's user part, unique per call: the callee finds the call by it
	callID   string // the caller's Call-ID: the record's call_id
	ext      string
	hold     time.Duration
	byCallee bool // the callee hangs up (else the caller)
	silent   bool // the callee goes silent half-way: no BYE, no RTP, no answers

	mu        sync.Mutex
	status    int  // final answer to the INVITE; 0: none
	shed      bool // 503 "overloaded" from the front door: no call, no record
	answered  bool
	end       string // how it ended: "caller BYE", "BYE from the PBX", "stuck"
	killedAt  time.Time
	byeAt     time.Time
	reached   bool // the callee got the INVITE
	aSent     int64
	aRecvd    int64
	bSent     int64
	bRecvd    int64
	calleeEnd string
}

func (c *call) killed(at time.Time) {
	c.mu.Lock()
	if c.killedAt.IsZero() {
		c.killedAt = at
	}
	c.mu.Unlock()
}

func (s *soak) callOf(user string) *call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byUser[user]
}

// place makes call c from caller phone p: INVITE with an offer, ACK, RTP both ways, then a BYE
// after the hold time or the other side's BYE through the PBX.
func (s *soak) place(c *call, p *phone) {
	defer s.wg.Done()
	st, err := newStream()
	if err != nil {
		s.logf("call %d: rtp socket: %v", c.n, err)
		return
	}
	l := newLeg(p, c.callID, c)
	l.st = st
	p.addLeg(l)
	defer p.forget(l)
	defer func() {
		s.media.remove(st)
		st.close()
		c.mu.Lock()
		c.aSent, c.aRecvd = st.sent.Load(), st.recvd.Load()
		c.mu.Unlock()
	}()

	branch := newBranch()
	body := sdp(st.port)
	from := fmt.Sprintf("<sip:%s@127.0.0.1>;tag=%s", c.user, l.localTag)
	inv := fmt.Sprintf("INVITE sip:%s@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=%s;rport\r\nMax-Forwards: 70\r\n"+
		"From: %s\r\nTo: <sip:%s@127.0.0.1>\r\nCall-ID: %s\r\nCSeq: 1 INVITE\r\nContact: <sip:%s@%s>\r\n"+
		"Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s",
		c.ext, s.pbx, p.addr(), branch, from, c.ext, c.callID, c.user, p.addr(), len(body), body)
	res := waitFinal(l.request(inv, branch, true), 75*time.Second)
	if res == nil {
		c.mu.Lock()
		c.end = "no final answer"
		c.mu.Unlock()
		return
	}
	c.mu.Lock()
	c.status = res.StatusCode
	c.mu.Unlock()
	if res.StatusCode >= 300 {
		p.send(fmt.Sprintf("ACK sip:%s@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=%s;rport\r\nMax-Forwards: 70\r\n"+
			"From: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
			c.ext, s.pbx, p.addr(), branch, from, res.To().Value(), c.callID))
		if w := res.GetHeader("Warning"); res.StatusCode == 503 && w != nil && strings.Contains(w.Value(), "overloaded") {
			c.mu.Lock()
			c.shed = true
			c.mu.Unlock()
		}
		return
	}
	target, to := contactURI(res), res.To().Value()
	ack := fmt.Sprintf("ACK %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=%s;rport\r\nMax-Forwards: 70\r\n"+
		"From: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
		target, p.addr(), newBranch(), from, to, c.callID)
	l.mu.Lock()
	l.ack = ack
	l.mu.Unlock()
	p.send(ack)
	c.mu.Lock()
	c.answered = true
	c.mu.Unlock()
	if relay := sdpAudio(res.Body()); relay != nil {
		s.media.add(st)
		st.start(relay)
	} else {
		s.count("caller: 2xx without an audio stream")
	}

	var hangup <-chan time.Time
	if !c.byCallee && !c.silent {
		hangup = time.After(c.hold)
	}
	end := ""
	select {
	case <-l.byeIn:
		end = "BYE from the PBX"
	case <-hangup:
		end = "caller BYE"
		b := newBranch()
		bye := fmt.Sprintf("BYE %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=%s;rport\r\nMax-Forwards: 70\r\n"+
			"From: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
			target, p.addr(), b, from, to, c.callID)
		if r := waitFinal(l.request(bye, b, false), 40*time.Second); r == nil || r.StatusCode != 200 {
			s.count("caller: BYE not answered 200")
		}
	case <-time.After(c.hold + s.mediaTimeout + time.Minute):
		end = "stuck"
		s.logf("call %d (%s to %s): still up %v after its hold time; BYE", c.n, c.callID, c.ext, s.mediaTimeout+time.Minute)
		b := newBranch()
		l.p.send(fmt.Sprintf("BYE %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=%s;rport\r\nMax-Forwards: 70\r\n"+
			"From: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
			target, p.addr(), b, from, to, c.callID))
	}
	c.mu.Lock()
	c.end, c.byeAt = end, time.Now()
	c.mu.Unlock()
}

// calleeLeg files a leg for a new INVITE from the PBX at callee phone p (before its answer
// starts, so that a retransmitted INVITE finds it).
func (s *soak) calleeLeg(p *phone, inv *sip.Request) *leg {
	st, err := newStream()
	if err != nil {
		s.logf("callee %s: rtp socket: %v", p.user, err)
		p.respond(inv, 500, "Server Internal Error", "", "")
		return nil
	}
	l := newLeg(p, inv.CallID().Value(), s.callOf(inv.From().Address.User))
	l.inv, l.st = inv, st
	p.addLeg(l)
	return l
}

// answer is the callee's side of a call: 180, 200 with an answer, RTP both ways, then its own BYE,
// the PBX's BYE, or silence (the plan of the call says which).
func (s *soak) answer(l *leg) {
	p, inv, c, st := l.p, l.inv, l.c, l.st
	defer p.forget(l)
	defer func() {
		s.media.remove(st)
		st.close()
		if c != nil {
			c.mu.Lock()
			c.bSent, c.bRecvd = st.sent.Load(), st.recvd.Load()
			c.mu.Unlock()
		}
	}()
	if c != nil {
		c.mu.Lock()
		c.reached = true
		c.mu.Unlock()
	} else {
		s.count("callee: INVITE for a call the soak does not know")
	}
	p.respond(inv, 180, "Ringing", l.localTag, "")
	time.Sleep(time.Duration(100+rand.IntN(400)) * time.Millisecond)
	if l.dead.Load() {
		return
	}
	ok := p.respond(inv, 200, "OK", l.localTag, sdp(st.port))
	l.lastInvRes.Store(&ok)
	if relay := sdpAudio(inv.Body()); relay != nil {
		s.media.add(st)
		st.start(relay)
	} else {
		s.count("callee: INVITE without an audio stream")
	}
	// The 2xx is ours to send again until the ACK comes (RFC 3261 §13.3.1.4).
	for wait, waited := t1, time.Duration(0); ; wait = min(2*wait, t2) {
		select {
		case <-l.acked:
		case <-l.byeIn:
		case <-l.gone:
		case <-time.After(wait):
			waited += wait
			if l.dead.Load() {
				return
			}
			if waited < 64*t1 {
				p.send(ok)
				continue
			}
			s.count("callee: no ACK for the 2xx")
		}
		break
	}

	var hangup, kill <-chan time.Time
	hold := 5 * time.Minute
	if c != nil {
		hold = c.hold
		switch {
		case c.silent:
			kill = time.After(c.hold / 2)
		case c.byCallee:
			hangup = time.After(c.hold)
		}
	}
	end := ""
	select {
	case <-l.byeIn:
		end = "BYE from the PBX"
	case <-l.gone:
		end = "killed with its phone"
	case <-kill:
		l.die()
		end = "went silent"
	case <-hangup:
		end = "callee BYE"
		b := newBranch()
		bye := fmt.Sprintf("BYE %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=%s;rport\r\nMax-Forwards: 70\r\n"+
			"From: %s;tag=%s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
			contactURI(inv), p.addr(), b, inv.To().Value(), l.localTag, inv.From().Value(), l.callID)
		if r := waitFinal(l.request(bye, b, false), 40*time.Second); r == nil || r.StatusCode != 200 {
			if !l.dead.Load() {
				s.count("callee: BYE not answered 200")
			}
		}
	case <-time.After(hold + s.mediaTimeout + time.Minute):
		end = "stuck"
	}
	if c != nil {
		c.mu.Lock()
		c.calleeEnd = end
		c.mu.Unlock()
	}
}
