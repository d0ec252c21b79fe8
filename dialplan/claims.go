package dialplan

import (
	"context"
	"slices"

	"github.com/pbxkit/pbxkit/b2bua"
)

// AgentClaimer claims queue agents across PBX nodes: several nodes sharing one database each keep
// their own Queues, and a node rings an agent only after claiming it, so no agent is rung by two
// nodes at once. The claim of the agent that answers lasts until its call ends (the agent is
// busy for every node); the others' are released when the attempt ends. Claims of a node that
// dies expire (the claimer's business).
type AgentClaimer interface {
	// ClaimAgent claims ext for the call callID; false when another call holds it. An error
	// (the database away) lets the agent be rung: a queue that stops working is worse than an
	// agent rung twice.
	ClaimAgent(ctx context.Context, ext, callID string) (bool, error)
	// ReleaseAgent ends the claim of ext by callID.
	ReleaseAgent(ext, callID string)
}

// ClaimWith makes the queues claim every agent before ringing it. Call it before the first Wait.
func (qs *Queues) ClaimWith(c AgentClaimer) { qs.claims = c }

// claim keeps the agents of ring that could be claimed for the call and drops the others from
// the offer.
func (qs *Queues) claim(ctx context.Context, callID string, ring []string) []string {
	if qs.claims == nil {
		return ring
	}
	kept := ring[:0:0]
	var lost []string
	for _, ext := range ring {
		ok, err := qs.claims.ClaimAgent(ctx, ext, callID)
		if ok || err != nil {
			kept = append(kept, ext)
		} else {
			lost = append(lost, ext)
		}
	}
	qs.release(lost)
	return kept
}

// unclaim releases the claims of ring for the call, but for the agent that answered: its claim
// goes when its call ends.
func (qs *Queues) unclaim(c *b2bua.Call, ring []string, answeredBy string) {
	if qs.claims == nil {
		return
	}
	for _, ext := range ring {
		if ext != answeredBy {
			qs.claims.ReleaseAgent(ext, c.ID())
		}
	}
	if answeredBy != "" && slices.Contains(ring, answeredBy) {
		id := c.ID()
		c.OnEnd(func(b2bua.Record) { qs.claims.ReleaseAgent(answeredBy, id) })
	}
}
