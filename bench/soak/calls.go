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

	d, answer, ok := s.invite(c, l)
	if !ok {
		return
	}
	if relay := sdpAudio(answer); relay != nil {
		s.media.add(st)
		st.start(relay)
	} else {
		s.count("caller: 2xx without an audio stream")
	}
	end := s.holdCaller(c, l, d)
	c.mu.Lock()
	c.end, c.byeAt = end, time.Now()
	c.mu.Unlock()
}

// callerDialog is what the caller's in-dialog requests carry.
type callerDialog struct {
	target   string // the callee's Contact, as the PBX gave it
	from, to string // From and To header values, with their tags
}

// invite sends c's INVITE with an offer for l's stream, waits for the final answer and
// acknowledges it. When the call is answered it returns the dialog and the answer's body.
func (s *soak) invite(c *call, l *leg) (d callerDialog, answer []byte, ok bool) {
	p := l.p
	branch := newBranch()
	body := sdp(l.st.port)
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
		return d, nil, false
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
		return d, nil, false
	}
	d = callerDialog{target: contactURI(res), from: from, to: res.To().Value()}
	ack := fmt.Sprintf("ACK %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=%s;rport\r\nMax-Forwards: 70\r\n"+
		"From: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
		d.target, p.addr(), newBranch(), d.from, d.to, c.callID)
	l.mu.Lock()
	l.ack = ack
	l.mu.Unlock()
	p.send(ack)
	c.mu.Lock()
	c.answered = true
	c.mu.Unlock()
	return d, res.Body(), true
}

// holdCaller holds the answered call on the caller's side until the PBX's BYE, the caller's own
// BYE after the hold time, or, stuck past it, a BYE sent blind. It returns how the call ended.
func (s *soak) holdCaller(c *call, l *leg, d callerDialog) string {
	var hangup <-chan time.Time
	if !c.byCallee && !c.silent {
		hangup = time.After(c.hold)
	}
	select {
	case <-l.byeIn:
		return "BYE from the PBX"
	case <-hangup:
		b := newBranch()
		if r := waitFinal(l.request(d.bye(l.p, b, c.callID), b, false), 40*time.Second); r == nil || r.StatusCode != 200 {
			s.count("caller: BYE not answered 200")
		}
		return "caller BYE"
	case <-time.After(c.hold + s.mediaTimeout + time.Minute):
		s.logf("call %d (%s to %s): still up %v after its hold time; BYE", c.n, c.callID, c.ext, s.mediaTimeout+time.Minute)
		l.p.send(d.bye(l.p, newBranch(), c.callID))
		return "stuck"
	}
}

// bye is the caller's BYE in the dialog, from phone p.
func (d callerDialog) bye(p *phone, branch, callID string) string {
	return fmt.Sprintf("BYE %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=%s;rport\r\nMax-Forwards: 70\r\n"+
		"From: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
		d.target, p.addr(), branch, d.from, d.to, callID)
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
	if !s.awaitACK(l, ok) {
		return
	}
	end := s.holdCallee(l)
	if c != nil {
		c.mu.Lock()
		c.calleeEnd = end
		c.mu.Unlock()
	}
}

// awaitACK sends the 2xx ok again until the ACK comes (RFC 3261 §13.3.1.4), the dialog ends or
// 64*T1 pass. It returns false when the leg died meanwhile.
func (s *soak) awaitACK(l *leg, ok string) bool {
	for wait, waited := t1, time.Duration(0); ; wait = min(2*wait, t2) {
		select {
		case <-l.acked:
		case <-l.byeIn:
		case <-l.gone:
		case <-time.After(wait):
			waited += wait
			if l.dead.Load() {
				return false
			}
			if waited < 64*t1 {
				l.p.send(ok)
				continue
			}
			s.count("callee: no ACK for the 2xx")
		}
		return true
	}
}

// holdCallee holds the answered call on the callee's side until the PBX's BYE, the phone's
// death, the callee going silent or sending its own BYE as the call's plan says, or, stuck, the
// hold time plus a margin. It returns how the call ended.
func (s *soak) holdCallee(l *leg) string {
	p, inv, c := l.p, l.inv, l.c
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
	select {
	case <-l.byeIn:
		return "BYE from the PBX"
	case <-l.gone:
		return "killed with its phone"
	case <-kill:
		l.die()
		return "went silent"
	case <-hangup:
		b := newBranch()
		bye := fmt.Sprintf("BYE %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=%s;rport\r\nMax-Forwards: 70\r\n"+
			"From: %s;tag=%s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
			contactURI(inv), p.addr(), b, inv.To().Value(), l.localTag, inv.From().Value(), l.callID)
		if r := waitFinal(l.request(bye, b, false), 40*time.Second); r == nil || r.StatusCode != 200 {
			if !l.dead.Load() {
				s.count("callee: BYE not answered 200")
			}
		}
		return "callee BYE"
	case <-time.After(hold + s.mediaTimeout + time.Minute):
		return "stuck"
	}
}
