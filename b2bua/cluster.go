package b2bua

import (
	"context"
	"time"
)

// Several PBX nodes (Config.Cluster): each node's engine keeps its own calls, so a call parked or
// ringing on one node is in that node's memory only. The cluster shares the park slots (a slot is
// taken here only once claimed on every node) and tells where a parked or ringing call is when
// this node holds none: Unpark and Pickup then dial the node that holds it, which does the
// retrieval or the pickup there, and this call relays between the caller and that node.

// Cluster shares park slots with the other nodes of a PBX and finds the calls they hold. pbx
// implements it over the shared database.
type Cluster interface {
	// ClaimSlot claims park slot for the call callID on every node. It reports false when another
	// node parks a call there; an error leaves the slot to this node alone (it is taken).
	ClaimSlot(ctx context.Context, slot, callID string) (bool, error)
	// ReleaseSlot ends the claim, once the call left the slot. It must not block.
	ReleaseSlot(slot, callID string)
	// ParkedElsewhere returns the target that retrieves the call parked at slot on another node,
	// or false when no other node parks one there.
	ParkedElsewhere(ctx context.Context, slot string) (Target, bool, error)
	// RingingElsewhere returns the target that picks up the call ringing longest at one of exts on
	// another node, or false when none rings there.
	RingingElsewhere(ctx context.Context, exts []string) (Target, bool, error)
}

// clusterTimeout bounds a park slot claim made outside any routing context (a REFER to park).
const clusterTimeout = 5 * time.Second

// takeSlot gives c the first park slot free on this node and, with a Cluster, claimed on every
// node.
func (e *Engine) takeSlot(c *Call) (string, bool) {
	for _, slot := range e.cfg.Park.Slots {
		if !e.lot.reserve(slot, c) {
			continue
		}
		if e.claimSlot(slot, c) {
			return slot, true
		}
		e.lot.free(slot, c)
	}
	return "", false
}

// claimSlot claims slot for c on the other nodes; without a Cluster the slot is this node's.
func (e *Engine) claimSlot(slot string, c *Call) bool {
	cl := e.cfg.Cluster
	if cl == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	ok, err := cl.ClaimSlot(ctx, slot, c.id)
	if err != nil {
		c.log.Warn("park slot not claimed on the other nodes: parking here anyway", "slot", slot, "error", err)
		return true
	}
	if !ok {
		c.log.Debug("park slot taken on another node", "slot", slot)
	}
	return ok
}

// releaseSlot frees slot on this node and on the others.
func (e *Engine) releaseSlot(slot string, c *Call) {
	e.lot.free(slot, c)
	if cl := e.cfg.Cluster; cl != nil {
		cl.ReleaseSlot(slot, c.id)
	}
}

// dialElsewhere dials the node holding the call a retrieval or pickup found nothing of here, when
// the cluster knows one (find); otherwise the attempt fails with status and why.
func (c *Call) dialElsewhere(ctx context.Context, find func(Cluster) (Target, bool, error), status int, why string) (Result, error) {
	if cl := c.e.cfg.Cluster; cl != nil {
		t, ok, err := find(cl)
		switch {
		case err != nil:
			c.log.Warn("the other nodes could not be asked", "error", err)
		case ok:
			c.log.Info("the call is held by another node: dialling it", "dest", t.Dest, "ext", t.Ext)
			return c.Dial(ctx, []Target{t}, ConnectOptions{})
		}
	}
	return c.attemptFailed(status, why), nil
}
