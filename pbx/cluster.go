package pbx

import (
	"context"
	"net"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxkit/pbxkit/dialplan"
	"github.com/pbxkit/pbxkit/store"
)

// Several nodes (docs/architecture.md, "Several nodes"): PBXs that share one Postgres database
// behave as one PBX. Each node announces itself with a heartbeat row, signs digest nonces with
// keys every node reads from the database, shares its bans, and claims queue agents before
// ringing them. All of it needs a store that offers clusterStore (*store.Store does); with
// another Store the PBX runs alone, as before.

// clusterStore is what a store shared by several nodes offers beyond Store.
type clusterStore interface {
	Heartbeat(ctx context.Context, n store.Node) error
	RemoveNode(ctx context.Context, id string) error
	Nodes(ctx context.Context) ([]store.Node, error)
	NonceKey(ctx context.Context, generation int64) ([]byte, error)
	PutBan(ctx context.Context, ip string, until time.Time) error
	Bans(ctx context.Context) ([]store.Ban, error)
	BansChanged() <-chan struct{}
	ClaimAgent(ctx context.Context, node, ext, callID string, ttl time.Duration) (bool, error)
	ReleaseAgent(ctx context.Context, node, ext, callID string) error
	RenewClaims(ctx context.Context, node string, ttl time.Duration) error
	ReleaseClaims(ctx context.Context, node string) error
	JoinQueue(ctx context.Context, node, queue, callID string, maxLen int, ttl time.Duration) (int, bool, error)
	QueuePosition(ctx context.Context, queue, callID string) (int, error)
	LeaveQueue(ctx context.Context, queue, callID string) error
	QueueWaiting(ctx context.Context, queue string) (int, time.Time, error)
	ClaimSlot(ctx context.Context, node, slot, callID string, ttl time.Duration) (bool, error)
	ReleaseSlot(ctx context.Context, node, slot, callID string) error
	ParkedAt(ctx context.Context, slot string) (store.ParkedSlot, bool, error)
	KeepSlots(ctx context.Context, node string, slots []string) error
	SyncRinging(ctx context.Context, node string, add []store.RingingCall, remove []store.RingingKey, ttl time.Duration) error
	RingingAt(ctx context.Context, exts, nodes []string) (store.RingingCall, bool, error)
	SyncWatched(ctx context.Context, node string, add, remove []string, ttl time.Duration) error
	WatchedBy(ctx context.Context, nodes []string) ([]string, error)
	SyncDialogs(ctx context.Context, node string, put []store.DialogState, remove []store.DialogKey, ttl time.Duration) error
	DialogsOf(ctx context.Context, exts, nodes []string) ([]store.DialogState, error)
	WatchDialogs(f func(ext string)) (stop func())
	WatchedChanged() <-chan struct{}
	ClaimTrunk(ctx context.Context, node, trunk string, ttl time.Duration) (bool, error)
	ReleaseTrunk(ctx context.Context, node, trunk string) error
}

var _ clusterStore = (*store.Store)(nil)

// NodeStaleBeats is how many heartbeats a node may miss before the others (and officepbx nodes)
// take it for dead.
const NodeStaleBeats = 3

// NodeLive reports whether a node row was refreshed within NodeStaleBeats heartbeats of the given
// interval before now.
func NodeLive(n store.Node, interval time.Duration, now time.Time) bool {
	return now.Sub(n.LastSeen) <= time.Duration(NodeStaleBeats)*interval
}

// cluster returns the store as a clusterStore, or nil.
func (p *PBX) cluster() clusterStore {
	cs, _ := p.store.(clusterStore)
	return cs
}

// nodeRow is this node's row in the nodes table.
func (p *PBX) nodeRow() store.Node {
	return store.Node{
		ID: p.cfg.NodeID, SIPAddr: p.NodeSIPAddr(), HTTPAddr: p.cfg.NodeHTTP, Version: p.cfg.Version,
		StartedAt: p.startedAt,
	}
}

// NodeSIPAddr is the address this node announces to the others: ExternalIP (or the bound IP) and
// the SIP port. A node bound to 0.0.0.0 without ExternalIP announces its host name.
func (p *PBX) NodeSIPAddr() string {
	addr := p.UDPAddr()
	host := addr.IP.String()
	switch {
	case p.cfg.ExternalIP != "":
		host = p.cfg.ExternalIP
	case addr.IP.IsUnspecified():
		host = hostname()
	}
	return net.JoinHostPort(host, strconv.Itoa(addr.Port))
}

// joinCluster drops what a run of this node before a crash left claimed (its rows would otherwise
// be renewed by this run's heartbeats), then writes the node's row.
func (p *PBX) joinCluster(cs clusterStore) {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.HeartbeatInterval)
	defer cancel()
	if err := cs.ReleaseClaims(ctx, p.cfg.NodeID); err != nil {
		p.log.Warn("claims of an earlier run not released; they expire", "error", err)
	}
	p.beat(cs)
}

// heartbeatLoop writes this node's row every HeartbeatInterval (beat: it renews its claims,
// fetches the nonce keys ahead of need, rereads the nodes, the bans and what the others watch),
// and reads the shared bans or what the others watch again when told they changed. It returns at Shutdown, which removes the row.
func (p *PBX) heartbeatLoop(cs clusterStore) {
	t := time.NewTicker(p.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.beat(cs)
		case <-cs.BansChanged():
			p.loadBans(cs)
		case <-cs.WatchedChanged():
			p.presence.share.watchedChanged(p.presence, p.cfg.HeartbeatInterval)
		}
	}
}

// beat is one heartbeat. Failures are logged at most once a beat: the database being away is
// reported by calls and registrations too.
func (p *PBX) beat(cs clusterStore) {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.HeartbeatInterval)
	defer cancel()
	if err := cs.Heartbeat(ctx, p.nodeRow()); err != nil {
		p.log.Warn("node heartbeat failed", "node", p.cfg.NodeID, "error", err)
		return
	}
	if err := cs.RenewClaims(ctx, p.cfg.NodeID, p.claimTTL()); err != nil {
		p.log.Warn("claims not renewed (queue agents, waiting callers, park slots, ringing calls, busy lamps)", "error", err)
	}
	if err := cs.KeepSlots(ctx, p.cfg.NodeID, p.calls.ParkedSlots()); err != nil {
		p.log.Warn("park slot claims not checked", "error", err)
	}
	p.auth.keys.prefetch(ctx, p.now())
	p.refreshPeers(ctx, cs)
	p.ringing.wake() // the others may have come or gone; a failed write is retried
	p.presence.share.beat(ctx, p.presence)
	p.loadBans(cs)
}

// claimTTL is how long an agent claim lives without renewal: as long as a node row.
func (p *PBX) claimTTL() time.Duration {
	return time.Duration(NodeStaleBeats) * p.cfg.HeartbeatInterval
}

// leaveCluster removes this node's row and claims, at Shutdown.
func (p *PBX) leaveCluster(ctx context.Context) {
	cs := p.cluster()
	if cs == nil || !p.beating.Load() {
		return
	}
	// Even when Shutdown's time is up, the row is worth one short try: else it lingers as stale.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	if err := cs.ReleaseClaims(ctx, p.cfg.NodeID); err != nil {
		p.log.Warn("claims not released; they expire", "error", err)
	}
	if err := cs.RemoveNode(ctx, p.cfg.NodeID); err != nil {
		p.log.Warn("node row not removed; it goes stale", "node", p.cfg.NodeID, "error", err)
	}
}

// Nodes lists the nodes sharing this PBX's database, live or not (NodeLive tells), or nil without
// a shared store.
func (p *PBX) Nodes(ctx context.Context) ([]store.Node, error) {
	cs := p.cluster()
	if cs == nil {
		return nil, nil
	}
	return cs.Nodes(ctx)
}

// nodeInfo registers pbxkit_node_info: 1, labelled with the node's id and version, so that every
// series of a node can be joined with its id.
func (m *metrics) nodeInfo(id, version string) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "pbxkit_node_info", Help: "Always 1; labels name this node (its NodeID) and its version.",
	}, []string{"node", "version"})
	g.WithLabelValues(id, version).Set(1)
	m.reg.MustRegister(g)
}

// loadBans reads the bans in force from the database.
func (p *PBX) loadBans(cs clusterStore) {
	if p.cfg.AuthFailLimit < 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.HeartbeatInterval)
	defer cancel()
	read := time.Now()
	bans, err := cs.Bans(ctx)
	if err != nil {
		return // the bans last read stay; the database being away is reported elsewhere
	}
	p.auth.bans.setShared(bans, read)
}

// agentClaims claims queue agents in the shared database for this node's queues
// (dialplan.AgentClaimer): no agent is rung by two nodes at once, and the claims of a node that
// dies expire after NodeStaleBeats heartbeats.
type agentClaims struct {
	p  *PBX
	cs clusterStore
}

var _ dialplan.AgentClaimer = agentClaims{}

func (a agentClaims) ClaimAgent(ctx context.Context, ext, callID string) (bool, error) {
	ok, err := a.cs.ClaimAgent(ctx, a.p.cfg.NodeID, ext, callID, a.p.claimTTL())
	if err != nil {
		a.p.log.Warn("queue agent not claimed; ringing it anyway", "ext", ext, "call_id", callID, "error", err)
	}
	return ok, err
}

// ReleaseAgent runs in the background: the call core must not wait for the database. A release
// that fails leaves the claim to expire.
func (a agentClaims) ReleaseAgent(ext, callID string) {
	a.p.wg.Add(1)
	go func() {
		defer a.p.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.cs.ReleaseAgent(ctx, a.p.cfg.NodeID, ext, callID); err != nil {
			a.p.log.Warn("queue agent claim not released; it expires", "ext", ext, "call_id", callID, "error", err)
		}
	}()
}

// waitingList keeps this node's queue callers in the shared waiting lists
// (dialplan.WaitingList): one order per queue across the nodes; a dead node's callers expire
// with its claims.
type waitingList struct {
	p  *PBX
	cs clusterStore
}

var (
	_ dialplan.WaitingList    = waitingList{}
	_ dialplan.WaitingCounter = waitingList{}
)

func (w waitingList) Join(ctx context.Context, queue, callID string, maxLen int) (int, bool, error) {
	pos, ok, err := w.cs.JoinQueue(ctx, w.p.cfg.NodeID, queue, callID, maxLen, w.p.claimTTL())
	if err != nil {
		w.p.log.Warn("queue caller not in the shared waiting list; this node's order applies", "queue", queue, "call_id", callID, "error", err)
	}
	return pos, ok, err
}

func (w waitingList) Position(ctx context.Context, queue, callID string) (int, error) {
	return w.cs.QueuePosition(ctx, queue, callID)
}

// Waiting counts the callers waiting in queue on every node (dialplan.WaitingCounter).
func (w waitingList) Waiting(ctx context.Context, queue string) (int, time.Time, error) {
	return w.cs.QueueWaiting(ctx, queue)
}

// Leave waits for the database (bounded by the store's operation time-out), so that the callers
// behind see the new order at once; a row left behind by a failure expires.
func (w waitingList) Leave(queue, callID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.cs.LeaveQueue(ctx, queue, callID); err != nil {
		w.p.log.Warn("queue caller not taken out of the shared waiting list; it expires", "queue", queue, "call_id", callID, "error", err)
	}
}
