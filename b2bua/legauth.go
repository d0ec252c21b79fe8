package b2bua

import (
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/internal/sipx"
)

// Credentials answer a callee's digest challenge (RFC 3261 §22.2): a trunk's account at its
// provider.
type Credentials struct {
	Username, Password string
}

// current reports whether res answers the leg's latest INVITE: after a challenge was answered,
// what is still on its way for the first INVITE (a retransmitted 407) is dropped.
func (l *leg) current(res *sip.Response) bool {
	branch, _ := res.Via().Params.Get("branch")
	return branch == l.branch
}

// authRetry answers a 401 or 407 once, when the target has credentials (a trunk): the INVITE is
// sent again with them, with a new branch and the next CSeq, in a new transaction (the first
// one ACKs its challenge itself). It returns that transaction, or nil when res is to be handled
// as any other answer: no credentials, a second challenge (wrong credentials), a challenge that
// cannot be answered, or a leg being cancelled. It runs on the leg's reader; old is the
// transaction res answers, taken whether res was read from old's own channel already.
func (l *leg) authRetry(res *sip.Response, old sip.ClientTransaction, taken bool) sip.ClientTransaction {
	code := res.StatusCode
	if l.target.Auth == nil || l.authTried || code != 401 && code != 407 {
		return nil
	}
	l.authTried = true
	if !taken {
		awaitPassUp(old)
	}
	l.mu.Lock()
	inv, gaveUp := l.inv, l.cancelWanted
	l.mu.Unlock()
	if gaveUp || inv == nil {
		return nil
	}
	inv = inv.Clone()
	log := l.c.log.With("target", l.target.URI.String())
	if err := sipx.Authorize(inv, res, l.target.Auth.Username, l.target.Auth.Password); err != nil {
		log.Warn("challenge not answered", "status", code, "error", err)
		return nil
	}
	l.c.mu.Lock()
	l.d.cseq++
	inv.CSeq().SeqNo = l.d.cseq
	l.c.mu.Unlock()
	inv.RemoveHeader("Via")
	inv.PrependHeader(newVia(l.d.transport, l.d.contact.Address, l.c.e.cfg.BranchPrefix))
	e := l.c.e
	e.table.removeLeg(l.branch)
	l.branch, _ = inv.Via().Params.Get("branch")
	e.table.addLeg(l.branch, l)
	tx, err := l.transaction(inv)
	if err != nil {
		log.Warn("authenticated INVITE not sent", "error", err)
		return nil
	}
	l.mu.Lock()
	l.inv, l.cseq, l.ringing, l.cancelSent = inv, inv.CSeq().SeqNo, false, false
	l.mu.Unlock()
	log.Debug("challenge answered", "status", code)
	return tx
}

// awaitPassUp waits until tx has passed its final answer up, which sipgo does right after
// ACKing it: the authenticated INVITE must not overtake that ACK (the inbox hears the challenge
// first), and the transaction must not be left blocked on the hand-over.
func awaitPassUp(tx sip.ClientTransaction) {
	timer := time.NewTimer(time.Second)
	defer timer.Stop()
	for {
		select {
		case res := <-tx.Responses():
			if !res.IsProvisional() {
				return
			}
		case <-tx.Done():
			return
		case <-timer.C:
			return
		}
	}
}
