package pbx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/dialplan"
	"github.com/pbxkit/pbxkit/store"
)

// setupDialplan builds the call router from the configuration: the Go handler, then the Lua
// script, then default routing, which takes the calls they left alone (dialplan.Default).
func (p *PBX) setupDialplan() error {
	p.queues = dialplan.NewQueues(directory{p})
	if cs := p.cluster(); cs != nil {
		p.queues.ClaimWith(agentClaims{p: p, cs: cs})
		p.queues.ShareWaiting(waitingList{p: p, cs: cs})
	}
	p.watchQueues()
	p.fallback = dialplan.Default{Directory: directory{p}, Warning: p.warning, Features: p.cfg.Features.dialplanFeatures()}
	if p.cfg.PauseCode != "off" {
		p.fallback.PauseCode = p.cfg.PauseCode
	}
	var handlers []dialplan.Handler
	if p.cfg.Dialplan != nil {
		handlers = append(handlers, p.cfg.Dialplan)
	}
	if p.cfg.DialplanScript != "" {
		l, err := dialplan.NewLua(dialplan.LuaConfig{
			Script: p.cfg.DialplanScript, Directory: directory{p}, Queues: p.queues,
			MaxRunTime: p.cfg.DialplanTimeout, Watch: true, Location: p.cfg.DialplanLocation,
			Logger: p.log, OnReload: p.dialplanReloaded, DataDir: p.cfg.DataDir,
		})
		if err != nil {
			return fmt.Errorf("pbx: %w", err)
		}
		p.lua = l
		handlers = append(handlers, l)
	}
	handlers = append(handlers, dialplan.HandlerFunc(p.defaultRoute))
	p.route = dialplan.Chain(handlers...)
	return nil
}

// Directory returns the PBX's extensions and queues as a dialplan sees them: the settings a Go
// dialplan reads (the same as the Lua pbx.extension table), and what dialplan.Default needs to
// forward as the settings say.
func (p *PBX) Directory() dialplan.Directory { return directory{p} }

// ReloadDialplan compiles the Lua dialplan again and, when it compiles and loads, runs the new
// version for new calls; a broken script leaves the running one in place and is returned. Without
// a Lua dialplan it does nothing.
func (p *PBX) ReloadDialplan() error {
	if p.lua == nil {
		return nil
	}
	return p.lua.Reload()
}

// DialplanVersion returns the version of the Lua dialplan running (1 at start, one more per
// successful reload), or 0 without one.
func (p *PBX) DialplanVersion() int {
	if p.lua == nil {
		return 0
	}
	return p.lua.Version()
}

func (p *PBX) dialplanReloaded(version int, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	p.metrics.dialplanReloads.WithLabelValues(result).Inc()
}

// Queues returns the PBX's call queues (who waits where).
func (p *PBX) Queues() *dialplan.Queues { return p.queues }

// routeInvite hands an INVITE to the dialplan: one authenticated (ext), from a trusted source or
// from a trunk (ext nil).
func (p *PBX) routeInvite(req *sip.Request, tx sip.ServerTransaction, ext *store.Extension) {
	if p.overMaxCalls(req, tx) {
		return
	}
	if contact, ok := p.fromPeer(req); ok {
		p.peerCalls.Store(req.CallID().Value(), true)
		p.calls.Handle(req, tx, "", p.ringForPeer(contact)) // noderoute.go
		return
	}
	user := ""
	if ext != nil {
		user = ext.Number
	}
	p.calls.Handle(req, tx, user, p.routeCall)
}

// overMaxCalls answers 503 when Config.MaxCalls calls are up, and reports it.
func (p *PBX) overMaxCalls(req *sip.Request, tx sip.ServerTransaction) bool {
	if p.cfg.MaxCalls > 0 && p.calls.Active() >= p.cfg.MaxCalls {
		p.reply(req, tx, 503, "too many calls", sip.NewHeader("Retry-After", "10"))
		return true
	}
	return false
}

// defaultRoute is default routing (dialplan.Default: the dialled extension's settings decide),
// last after any dialplan. A refusal carries a Warning saying why; a store that cannot answer
// gets the caller 503 with Retry-After.
func (p *PBX) defaultRoute(ctx context.Context, c *b2bua.Call) error {
	if handled, err := p.voicemailFeature(ctx, c); handled {
		return err
	}
	err := p.fallback.Handle(ctx, c)
	if err != nil && !c.Decided() && (errors.Is(err, store.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)) {
		p.log.Error("routing: store unavailable", "error", err)
		return c.Reject(503, "", sip.NewHeader("Retry-After", "5"), sip.NewHeader("Warning", p.warning("database unavailable")))
	}
	return err
}

// targetsFor applies default routing to an extension number: the contacts to ring, or a
// *b2bua.StatusError saying why the extension cannot be called (or a store error).
func (p *PBX) targetsFor(ctx context.Context, number string) ([]b2bua.Target, error) {
	if number == "" {
		return nil, &b2bua.StatusError{Code: 404, Reason: "the Request-URI names no extension"}
	}
	ext, err := p.store.Extension(ctx, number)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &b2bua.StatusError{Code: 404, Reason: "no such extension"}
	}
	if err != nil {
		return nil, err
	}
	switch {
	case !ext.Enabled:
		return nil, &b2bua.StatusError{Code: 410, Reason: fmt.Sprintf("extension %s is disabled", number)}
	case ext.DND:
		return nil, &b2bua.StatusError{Code: 486, Reason: "do not disturb"}
	}
	bindings, err := p.store.Bindings(ctx, number)
	if err != nil {
		return nil, err
	}
	targets := make([]b2bua.Target, 0, len(bindings))
	only, forPeer := localContact(ctx)
	for _, b := range bindings {
		if forPeer && (b.Contact != only || b.NodeID != "" && b.NodeID != p.cfg.NodeID) {
			continue // another node asked for one contact of this node's
		}
		if n, ok := p.peerFor(b); ok && !forPeer {
			if t, ok := viaPeer(number, b, n); ok {
				targets = append(targets, t)
				continue
			}
		}
		var uri sip.Uri
		if err := sip.ParseUri(b.Contact, &uri); err != nil {
			p.log.Warn("unusable registered contact", "ext", number, "contact", b.Contact, "error", err)
			continue
		}
		targets = append(targets, b2bua.Target{URI: uri, Dest: b.Source, Transport: b.Transport, Ext: number})
	}
	if len(targets) == 0 {
		return nil, &b2bua.StatusError{Code: 480, Reason: fmt.Sprintf("extension %s is not registered", number)}
	}
	return targets, nil
}

// resolve is the call core's Resolver. A URI without host, or whose host is the PBX's domain or
// its own address, names an extension, routed like a call to it (transfer targets are always
// such). Any other sip: URI is a foreign destination that the dialplan chose: it is called
// directly (its transport from the URI's transport parameter, UDP by default).
func (p *PBX) resolve(ctx context.Context, target sip.Uri) ([]b2bua.Target, error) {
	if p.local(target) {
		return p.targetsFor(ctx, target.User)
	}
	transport := b2bua.URITransport(target)
	if transport != "udp" && transport != "tcp" && (transport != "tls" || p.tls == nil) {
		return nil, &b2bua.StatusError{Code: 416, Reason: "transport " + transport + " is not served"}
	}
	return []b2bua.Target{{URI: target, Transport: transport}}, nil
}

// local reports whether uri names this PBX.
func (p *PBX) local(uri sip.Uri) bool {
	if uri.Host == "" || strings.EqualFold(uri.Host, p.cfg.Domain) {
		return true
	}
	addr := p.UDPAddr()
	if uri.Port != 0 && uri.Port != addr.Port {
		return false
	}
	ip := net.ParseIP(uri.Host)
	if ip == nil {
		return false
	}
	return ip.Equal(addr.IP) || addr.IP.IsUnspecified() && (ip.IsLoopback() || isLocalIP(ip))
}

// isLocalIP reports whether ip belongs to one of the machine's interfaces.
func isLocalIP(ip net.IP) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// directory shows the dialplan the PBX's extensions and queues.
type directory struct{ p *PBX }

var _ dialplan.Directory = directory{}

func (d directory) Extension(ctx context.Context, number string) (*dialplan.Extension, error) {
	if uri, err := b2bua.ParseDestination(number); err == nil && uri.Host != "" {
		if !d.p.local(uri) {
			return nil, nil
		}
		number = uri.User
	}
	if store.ValidateNumber(number) != nil {
		return nil, nil // no extension can have that number
	}
	ext, err := d.p.store.Extension(ctx, number)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	bindings, err := d.p.store.Bindings(ctx, number)
	if err != nil {
		return nil, err
	}
	return &dialplan.Extension{
		Number: ext.Number, Name: ext.Name, Enabled: ext.Enabled, DND: ext.DND,
		ForwardAlways: ext.ForwardAlways, ForwardBusy: ext.ForwardBusy, ForwardNoAnswer: ext.ForwardNoAnswer,
		RingTimeout: ext.RingTimeout, Registered: len(bindings) > 0, PickupGroup: ext.PickupGroup,
		Voicemail: ext.Voicemail,
		Record:    ext.Record,
	}, nil
}
