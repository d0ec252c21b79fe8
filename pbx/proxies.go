package pbx

import (
	"net/netip"

	"github.com/emiago/sipgo/sip"
)

// Several nodes usually sit behind a SIP load balancer (Kamailio's dispatcher,
// bench/kamailio/dispatcher.cfg): every request then comes from the balancer's address. Unlike
// Trusted, Config.Proxies does not let such requests skip authentication; it only says whom
// they come from: the client's address is the one the proxy received them from, which it wrote in
// the Via below its own (RFC 3261 §18.2.1 "received", RFC 3581 "rport"). Bans, the per-source
// rate limit and the log lines then name the phone, not the balancer, so that one phone
// guessing passwords does not get the balancer (and with it every phone) banned.

// fromProxy reports whether ip is one of Config.Proxies.
func (p *PBX) fromProxy(ip netip.Addr) bool {
	for _, n := range p.cfg.Proxies {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// clientIP is the address a request comes from: its source, or for a request relayed by one of
// Config.Proxies, the address in the Via the proxy added below its own.
func (p *PBX) clientIP(req *sip.Request) (netip.Addr, bool) {
	ip, ok := sourceIP(req)
	if !ok || !p.fromProxy(ip) {
		return ip, ok
	}
	return viaClient(req, ip)
}

// viaClient reads the second Via: its received parameter, else its sent-by host; proxy when the
// request has one Via only or the address does not parse.
func viaClient(req *sip.Request, proxy netip.Addr) (netip.Addr, bool) {
	vias := req.GetHeaders("Via")
	if len(vias) < 2 {
		return proxy, true
	}
	v, ok := vias[1].(*sip.ViaHeader)
	if !ok {
		return proxy, true
	}
	host := v.Host
	if r, ok := v.Params.Get("received"); ok && r != "" {
		host = r
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return proxy, true
	}
	return a.Unmap(), true
}
