package pbx

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/store"
)

// Phones registered straight to the nodes (no balancer in front) keep their NAT binding or their
// TCP/TLS connection with the node they registered through. A call taken by another node goes
// through that node (docs/architecture.md, "Several nodes"): the node taking the call sends the
// B-leg INVITE to the registering node's SIP address, naming the contact to ring in
// nodeRouteHeader; the registering node, which trusts the other nodes (Config.Trusted), rings
// that contact of its own registrations over the phone's connection, and relays the call. A
// registration made through one of Config.Proxies is not routed so: the proxy holds the phone's
// path and every node reaches it there. Nor is one whose node is not live (it will
// re-register elsewhere; meanwhile the phone is called directly, as a single node would).

// nodeRouteHeader names the contact a node is asked to ring among its own registrations.
const nodeRouteHeader = "X-Pbxkit-Contact"

// peerTable holds the nodes' rows as the last heartbeat read them.
type peerTable struct {
	mu    sync.RWMutex
	nodes map[string]store.Node
}

func (t *peerTable) set(nodes []store.Node) {
	m := make(map[string]store.Node, len(nodes))
	for _, n := range nodes {
		m[n.ID] = n
	}
	t.mu.Lock()
	t.nodes = m
	t.mu.Unlock()
}

// live returns the ids of the live nodes other than self.
func (t *peerTable) live(self string, interval time.Duration, now time.Time) []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var ids []string
	for id, n := range t.nodes {
		if id != self && NodeLive(n, interval, now) {
			ids = append(ids, id)
		}
	}
	return ids
}

func (t *peerTable) get(id string) (store.Node, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	n, ok := t.nodes[id]
	return n, ok
}

// refreshPeers reads the node rows, at each heartbeat.
func (p *PBX) refreshPeers(ctx context.Context, cs clusterStore) {
	nodes, err := cs.Nodes(ctx)
	if err == nil {
		p.peers.set(nodes)
	}
}

// peerFor returns the live node that holds binding b, when the call must go through it.
func (p *PBX) peerFor(b store.Binding) (store.Node, bool) {
	if b.NodeID == "" || b.NodeID == p.cfg.NodeID {
		return store.Node{}, false
	}
	if src, err := netip.ParseAddrPort(b.Source); err == nil && p.fromProxy(src.Addr().Unmap()) {
		return store.Node{}, false
	}
	n, ok := p.peers.get(b.NodeID)
	if !ok || n.SIPAddr == "" || !NodeLive(n, p.cfg.HeartbeatInterval, p.now()) {
		return store.Node{}, false
	}
	return n, true
}

// viaPeer is the target that rings b's contact through node n.
func viaPeer(number string, b store.Binding, n store.Node) (b2bua.Target, bool) {
	return peerTarget(number, n, sip.NewHeader(nodeRouteHeader, b.Contact))
}

// peerTarget is the target that sends a call for number to node n, with h saying what for.
func peerTarget(number string, n store.Node, h sip.Header) (b2bua.Target, bool) {
	host, port, err := net.SplitHostPort(n.SIPAddr)
	if err != nil {
		return b2bua.Target{}, false
	}
	pn, err := strconv.Atoi(port)
	if err != nil {
		return b2bua.Target{}, false
	}
	return b2bua.Target{
		URI: sip.Uri{Scheme: "sip", User: number, Host: host, Port: pn}, Dest: n.SIPAddr, Transport: "udp", Ext: number,
		Headers: []sip.Header{h},
	}, true
}

// localContactKey marks the context of a call another node sent here to ring one contact of
// this node's registrations.
type localContactKey struct{}

// localContact returns the contact a call from another node asks for, if any.
func localContact(ctx context.Context) (string, bool) {
	c, ok := ctx.Value(localContactKey{}).(string)
	return c, ok
}

// fromPeer returns the contact named by a call another node sent through this one: the request
// comes from a trusted source and carries nodeRouteHeader.
func (p *PBX) fromPeer(req *sip.Request) (string, bool) {
	h := req.GetHeader(nodeRouteHeader)
	if h == nil {
		return "", false
	}
	ip, ok := sourceIP(req)
	if !ok || !p.trusted(ip) {
		return "", false
	}
	return h.Value(), true
}

// ringForPeer is the route of a call another node sent here: it rings the named contact of the
// dialled extension's registrations held by this node, and nothing else (no dialplan: the
// sending node's has run).
func (p *PBX) ringForPeer(contact string) b2bua.RouteFunc {
	return func(ctx context.Context, c *b2bua.Call) error {
		ctx = context.WithValue(ctx, localContactKey{}, contact)
		r, err := c.Connect(ctx, []string{c.Callee()}, b2bua.ConnectOptions{})
		if err != nil || r.Answered || c.Decided() {
			return err
		}
		return c.Reject(r.Status, "")
	}
}
