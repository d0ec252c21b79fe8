package pbx

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/store"
)

// Outbound trunks (store.Trunk): the PBX reads them from the store at Run and every
// TrunkRefresh, resolves their hosts, keeps a registration at each provider that asks for one
// (trunkreg.go), sends calls for numbers that are no extension out through them
// (PBX.OutboundTrunk, the call core's ResolveTrunk) and takes calls from their addresses without
// digest authentication, routed by the dialled number (trunkCall).

// trunk is a stored trunk as the PBX uses it: its host resolved.
type trunk struct {
	store.Trunk
	host  string
	port  int
	addrs []netip.Addr // the host's addresses; calls from them come from the trunk
}

// dest is where the trunk's requests go: its first address and port.
func (t *trunk) dest() string {
	if len(t.addrs) == 0 {
		return net.JoinHostPort(t.host, strconv.Itoa(t.port))
	}
	return netip.AddrPortFrom(t.addrs[0], uint16(t.port)).String()
}

// regKey names what a registration depends on: a change of any of it starts a new one.
func (t *trunk) regKey() string {
	return strings.Join([]string{t.Host, t.Username, t.Password, t.dest()}, "\x00")
}

// trunkTable holds the trunks and their registrations.
type trunkTable struct {
	p   *PBX
	log *slog.Logger

	mu     sync.Mutex
	list   []*trunk // by name
	regs   map[string]*trunkReg
	status map[string]TrunkStatus
}

func newTrunkTable(p *PBX) *trunkTable {
	return &trunkTable{p: p, log: p.log.With("component", "trunks"), regs: map[string]*trunkReg{},
		status: map[string]TrunkStatus{}}
}

// resolveTimeout bounds the DNS look-up of one trunk host.
const resolveTimeout = 2 * time.Second

// refresh reads the trunks from the store, resolves their hosts and starts or stops
// registrations to match. A store without trunks (not a store.TrunkDirectory) has none.
func (tt *trunkTable) refresh(ctx context.Context) {
	if tt.refreshList(ctx) {
		tt.reconcile(tt.snapshot())
	}
}

// refreshList reads the trunks from the store and resolves their hosts; it reports whether it
// could.
func (tt *trunkTable) refreshList(ctx context.Context) bool {
	td, ok := tt.p.store.(store.TrunkDirectory)
	if !ok {
		return false
	}
	stored, err := td.Trunks(ctx)
	if err != nil {
		tt.log.Warn("trunks not read", "error", err)
		return false
	}
	old := tt.snapshot()
	list := make([]*trunk, 0, len(stored))
	for _, st := range stored {
		if t := tt.resolve(ctx, st, old); t != nil {
			list = append(list, t)
		}
	}
	tt.mu.Lock()
	tt.list = list
	tt.mu.Unlock()
	return true
}

// resolve turns a stored trunk into one the PBX uses; a host that does not resolve now keeps the
// addresses it had, or has none (its requests then go by name).
func (tt *trunkTable) resolve(ctx context.Context, st store.Trunk, old []*trunk) *trunk {
	host, port, err := store.SplitTrunkHost(st.Host)
	if err != nil {
		tt.log.Warn("trunk skipped", "trunk", st.Name, "error", err)
		return nil
	}
	t := &trunk{Trunk: st, host: host, port: port}
	if ip, err := netip.ParseAddr(host); err == nil {
		t.addrs = []netip.Addr{ip.Unmap()}
		return t
	}
	rctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(rctx, "ip", host)
	if err == nil && len(ips) > 0 {
		for _, ip := range ips {
			t.addrs = append(t.addrs, ip.Unmap())
		}
		return t
	}
	for _, o := range old {
		if o.Name == st.Name && o.host == host {
			t.addrs = o.addrs
		}
	}
	tt.log.Warn("trunk host not resolved", "trunk", st.Name, "host", host, "error", err, "kept", len(t.addrs))
	return t
}

func (tt *trunkTable) snapshot() []*trunk {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return tt.list
}

// byName returns the named trunk, or nil.
func (tt *trunkTable) byName(name string) *trunk {
	for _, t := range tt.snapshot() {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// bySource returns the trunk whose host has ip among its addresses, or nil.
func (tt *trunkTable) bySource(ip netip.Addr) *trunk {
	ip = ip.Unmap()
	for _, t := range tt.snapshot() {
		for _, a := range t.addrs {
			if a == ip {
				return t
			}
		}
	}
	return nil
}

// outbound picks the trunk for a number that is no extension: among trunks whose prefix the
// number starts with (and is longer than), the longest prefix; else the first trunk by name
// without a prefix. It returns the trunk and the number without the prefix.
func (tt *trunkTable) outbound(number string) (*trunk, string) {
	var best *trunk
	for _, t := range tt.snapshot() {
		switch {
		case t.Prefix == "":
			if best == nil {
				best = t
			}
		case len(number) > len(t.Prefix) && strings.HasPrefix(number, t.Prefix):
			if best == nil || len(t.Prefix) > len(best.Prefix) {
				best = t
			}
		}
	}
	if best == nil {
		return nil, ""
	}
	return best, number[len(best.Prefix):]
}

// Trunks returns the names of the trunks the PBX uses, sorted.
func (p *PBX) Trunks() []string {
	var names []string
	for _, t := range p.trunks.snapshot() {
		names = append(names, t.Name)
	}
	sort.Strings(names)
	return names
}

// OutboundTrunk returns the trunk that takes c's call to number (which is no extension) and the
// number to dial there, or "" when none does: there is no trunk for it, or the call itself came
// in from a trunk (a provider's call is never sent back out: that would let anyone who can reach
// the provider call anywhere at the PBX's cost).
func (p *PBX) OutboundTrunk(_ context.Context, c *b2bua.Call, number string) (trunk, dial string, err error) {
	if ip, ok := sourceIP(c.Request()); ok && p.trunks.bySource(ip) != nil {
		return "", "", nil
	}
	t, dial := p.trunks.outbound(number)
	if t == nil {
		return "", "", nil
	}
	return t.Name, dial, nil
}

// resolveTrunk is the call core's ResolveTrunk: number at the named trunk's provider, with its
// credentials, caller ID and domain.
func (p *PBX) resolveTrunk(_ context.Context, name, number string) ([]b2bua.Target, error) {
	t := p.trunks.byName(name)
	if t == nil {
		return nil, fmt.Errorf("pbx: trunk %q: %w", name, b2bua.ErrUnknownTrunk)
	}
	target := b2bua.Target{
		URI:  sip.Uri{Scheme: "sip", User: number, Host: t.host, Port: t.port},
		Dest: t.dest(), Transport: "udp", FromUser: t.CallerID, Domain: t.host,
	}
	if t.Username != "" {
		target.Auth = &b2bua.Credentials{Username: t.Username, Password: t.Password}
	}
	return []b2bua.Target{target}, nil
}

// trunkCall is an INVITE from a trunk's address: it needs no digest authentication and is routed
// by the dialled number, the Request-URI's user, or the To user when the Request-URI names the
// trunk's own account (a provider calling the Contact the PBX registered) or no user at all.
func (p *PBX) trunkCall(req *sip.Request, tx sip.ServerTransaction, t *trunk) {
	dialled := req.Recipient.User
	if dialled == "" || t.Username != "" && dialled == t.Username {
		if to := req.To(); to != nil && to.Address.User != "" {
			dialled = to.Address.User
		}
	}
	if dialled != req.Recipient.User {
		req.Recipient.User = dialled // retargeted, as a proxy does (RFC 3261 §16.5)
	}
	p.log.Info("call from trunk", "trunk", t.Name, "src", req.Source(), "dialled", dialled,
		"call_id", req.CallID().Value())
	p.routeInvite(req, tx, nil)
}

// OutboundTrunk makes the dialplan's directory a dialplan.TrunkDirectory.
func (d directory) OutboundTrunk(ctx context.Context, c *b2bua.Call, number string) (string, string, error) {
	return d.p.OutboundTrunk(ctx, c, number)
}

// load reads the trunks without starting registrations: calls from trunks are recognised from
// the start.
func (tt *trunkTable) load(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tt.refreshList(ctx)
}

// trunkLoop keeps the trunks and their registrations in step with the store until Shutdown,
// then unregisters and closes done.
func (p *PBX) trunkLoop(done chan struct{}) {
	defer close(done)
	defer p.trunks.stopAll()
	p.trunks.reconcile(p.trunks.snapshot())
	p.every(p.cfg.TrunkRefresh, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		p.trunks.refresh(ctx)
		cancel()
	})
}

// waitTrunks waits, at most until ctx ends, for the trunk loop to have unregistered.
func (p *PBX) waitTrunks(ctx context.Context) {
	if !p.trunksRun.Load() {
		return
	}
	select {
	case <-p.trunksDone:
	case <-ctx.Done():
		p.log.Warn("trunk registrations still stopping at shutdown", "error", ctx.Err())
	}
}
