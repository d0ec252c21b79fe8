package pbx

import (
	"context"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua"
)

// Park slots and call pickup across nodes (docs/architecture.md, "Several nodes"). A parked or
// ringing call lives in the memory of the node that took it. The nodes share which park slot
// holds a call of which node (park_slots, claimed before a call is parked) and which calls ring at
// which extensions (ringing_calls, written by ringMirror while other nodes are live). A node asked
// to retrieve a slot or pick up a ring it does not hold sends the caller's call to the node that
// holds it, naming the feature in nodeFeatureHeader, signed (nodesig.go); that node takes the
// call without a password, retrieves or picks up among its own calls, and the asking node relays.

// nodeFeatureHeader asks a node to retrieve one of its parked calls ("unpark 701") or to pick up
// one of its ringing calls ("pickup 101") for the caller.
const nodeFeatureHeader = "X-Pbxkit-Feature"

// Node features named in nodeFeatureHeader.
const (
	featureUnpark = "unpark"
	featurePickup = "pickup"
)

// clusterCalls is the call core's view of the other nodes (b2bua.Cluster).
type clusterCalls struct {
	p  *PBX
	cs clusterStore
}

var _ b2bua.Cluster = clusterCalls{}

// callCluster returns what the call core needs of the other nodes, or nil without a shared store.
func (p *PBX) callCluster() b2bua.Cluster {
	cs := p.cluster()
	if cs == nil {
		return nil
	}
	return clusterCalls{p: p, cs: cs}
}

func (k clusterCalls) ClaimSlot(ctx context.Context, slot, callID string) (bool, error) {
	return k.cs.ClaimSlot(ctx, k.p.cfg.NodeID, slot, callID, k.p.claimTTL())
}

// ReleaseSlot runs in the background: the call core must not wait for the database. A claim whose
// release failed goes at the next heartbeat, which keeps only the slots the park lot holds.
func (k clusterCalls) ReleaseSlot(slot, callID string) {
	k.p.wg.Add(1)
	go func() {
		defer k.p.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), clusterWriteTime)
		defer cancel()
		if err := k.cs.ReleaseSlot(ctx, k.p.cfg.NodeID, slot, callID); err != nil {
			k.p.log.Warn("park slot claim not released; the next heartbeat retries", "slot", slot,
				"call_id", callID, "error", err)
		}
	}()
}

func (k clusterCalls) ParkedElsewhere(ctx context.Context, slot string) (b2bua.Target, bool, error) {
	if forPeer(ctx) || !k.p.othersLive() {
		return b2bua.Target{}, false, nil
	}
	row, ok, err := k.cs.ParkedAt(ctx, slot)
	if err != nil || !ok || row.NodeID == k.p.cfg.NodeID {
		return b2bua.Target{}, false, err
	}
	t, ok := k.featureAt(row.NodeID, slot, featureUnpark)
	return t, ok, nil
}

func (k clusterCalls) RingingElsewhere(ctx context.Context, exts []string) (b2bua.Target, bool, error) {
	others := k.p.peers.live(k.p.cfg.NodeID, k.p.cfg.HeartbeatInterval, k.p.now())
	if forPeer(ctx) || len(others) == 0 {
		return b2bua.Target{}, false, nil
	}
	row, ok, err := k.cs.RingingAt(ctx, exts, others)
	if err != nil || !ok {
		return b2bua.Target{}, false, err
	}
	t, ok := k.featureAt(row.NodeID, row.Extension, featurePickup)
	return t, ok, nil
}

// featureAt is the target that asks live node id for feature on number. It names no extension:
// the call that dials it relays a pickup or retrieval, and is neither a ring at number (for busy
// lamps, the ring mirror or a pickup) nor a call to it.
func (k clusterCalls) featureAt(id, number, feature string) (b2bua.Target, bool) {
	n, ok := k.p.peers.get(id)
	if !ok || n.SIPAddr == "" || !NodeLive(n, k.p.cfg.HeartbeatInterval, k.p.now()) {
		return b2bua.Target{}, false
	}
	t, ok := peerTarget(number, n, sip.NewHeader(nodeFeatureHeader, k.p.signFeature(id, feature, number)))
	t.Ext = ""
	return t, ok
}

// clusterWriteTime bounds a write to the shared tables made off a call's path (a slot release, a
// batch of ringing calls).
const clusterWriteTime = 5 * time.Second

// othersLive reports whether another node was live at the last heartbeat.
func (p *PBX) othersLive() bool {
	return len(p.peers.live(p.cfg.NodeID, p.cfg.HeartbeatInterval, p.now())) > 0
}

// forPeerKey marks the context of a call another node sent here for a feature: it is done among
// this node's calls only.
type forPeerKey struct{}

func forPeer(ctx context.Context) bool { return ctx.Value(forPeerKey{}) != nil }

// peerFeature returns the feature and its number that a call from another node asks for: the
// request carries nodeFeatureHeader, signed by a node for this one (nodesig.go) or from a trusted
// source. From anyone else the header means nothing.
func (p *PBX) peerFeature(req *sip.Request) (feature, number string, ok bool) {
	h := req.GetHeader(nodeFeatureHeader)
	if h == nil {
		return "", "", false
	}
	f := parseFeature(h.Value())
	if p.featureSigned(f) {
		return f.feature, f.number, true
	}
	ip, ok := sourceIP(req)
	return f.feature, f.number, ok && p.trusted(ip)
}

// routeFeature hands a call another node sent for a feature to featureForPeer, without a
// password: peerFeature has checked it.
func (p *PBX) routeFeature(req *sip.Request, tx sip.ServerTransaction, feature, number string) {
	if p.overMaxCalls(req, tx) {
		return
	}
	p.peerCalls.Store(req.CallID().Value(), true)
	p.calls.Handle(req, tx, "", p.featureForPeer(feature, number))
}

// featureForPeer is the route of a call another node sent here for a feature: the retrieval or
// pickup among this node's calls, and nothing else (the sending node's dialplan has run).
func (p *PBX) featureForPeer(feature, number string) b2bua.RouteFunc {
	return func(ctx context.Context, c *b2bua.Call) error {
		ctx = context.WithValue(ctx, forPeerKey{}, true)
		var r b2bua.Result
		var err error
		switch {
		case number == "":
			return c.Reject(400, "", sip.NewHeader("Warning", p.warning(nodeFeatureHeader+" names no number")))
		case feature == featureUnpark:
			r, err = c.Unpark(ctx, number)
		case feature == featurePickup:
			r, err = c.Pickup(ctx, number)
		default:
			return c.Reject(400, "", sip.NewHeader("Warning", p.warning("unknown "+nodeFeatureHeader+" "+feature)))
		}
		if err != nil || r.Answered || c.Decided() {
			return err
		}
		return c.Reject(r.Status, "", sip.NewHeader("Warning", p.warning(r.Reason)))
	}
}
