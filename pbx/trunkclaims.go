package pbx

import (
	"context"
)

// With several nodes (a shared store), each trunk that registers at its provider is registered
// by one node: the one holding the trunk's claim (store.ClaimTrunk, renewed by the heartbeat and
// by each reconcile). When that node stops, its claim goes (or, killed, expires) and another
// node takes the trunk over at its next reconcile, within TrunkRefresh. Calls out through the
// trunk go from any node (the provider authenticates each request); calls in come to the node
// registered.

// mine keeps, of want (the trunks that want a registration), those this node registers.
func (tt *trunkTable) mine(want map[string]*trunk) {
	cs := tt.p.cluster()
	if cs == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterWriteTime)
	defer cancel()
	for name := range want {
		ok, err := cs.ClaimTrunk(ctx, tt.p.cfg.NodeID, name, tt.p.claimTTL())
		switch {
		case err != nil && tt.running(name):
			// Registered here already: it goes on through a database outage.
		case err != nil:
			tt.log.Warn("trunk registration not claimed: registered once the database answers", "trunk", name, "error", err)
			delete(want, name)
		case !ok:
			delete(want, name) // another node registers it
		}
	}
}

// running reports whether this node registers trunk name.
func (tt *trunkTable) running(name string) bool {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	_, ok := tt.regs[name]
	return ok
}

// release gives up this node's claims of the trunks whose registration it stopped, so that
// another node can take them at once.
func (tt *trunkTable) release(names []string) {
	cs := tt.p.cluster()
	if cs == nil || len(names) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterWriteTime)
	defer cancel()
	for _, name := range names {
		if err := cs.ReleaseTrunk(ctx, tt.p.cfg.NodeID, name); err != nil {
			tt.log.Warn("trunk claim not released; it expires", "trunk", name, "error", err)
		}
	}
}
