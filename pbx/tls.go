package pbx

import (
	"errors"
	"fmt"
	"net"
	"strings"
)

// SIP over TLS (Config.TLS) and the advertised address (Config.ExternalIP); docs/architecture.md,
// "TLS and NAT", says why they are built so.

// ErrNoTLS: ReloadTLS on a PBX that serves no TLS.
var ErrNoTLS = errors.New("pbx: no TLS listener")

// listenTLS binds the TLS listener when Config.TLS names one, after loading the certificate: a
// certificate that does not load fails New, as a port in use does.
func (p *PBX) listenTLS() error {
	if p.cfg.TLS == "" {
		return nil
	}
	cert, err := loadCertificate(p.cfg.TLSCert, p.cfg.TLSKey, p.log.With("component", "tls"))
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", p.cfg.TLS)
	if err != nil {
		return fmt.Errorf("pbx: listen tls %s: %w", p.cfg.TLS, err)
	}
	p.cert = cert
	p.tls = newListener(l, p.conns, p.log.With("component", "tls"))
	p.tls.tlsConfig = cert.serverConfig()
	return nil
}

// TLSAddr is the bound TLS address, nil when the PBX serves no TLS.
func (p *PBX) TLSAddr() *net.TCPAddr {
	if p.tls == nil {
		return nil
	}
	return p.tls.Addr().(*net.TCPAddr)
}

// ReloadTLS reads Config.TLSCert and TLSKey again and, when they hold a valid pair, serves new
// connections with it; on error the certificate in use stays. The files are also read again by
// themselves when they change (Config.TLSReloadInterval); this is for a SIGHUP after a renewal.
func (p *PBX) ReloadTLS() error {
	if p.cert == nil {
		return ErrNoTLS
	}
	return p.cert.reload()
}

// serveTLS serves the TLS listener and watches the certificate files, until Shutdown; both run
// in p.wg.
func (p *PBX) serveTLS() {
	if p.tls == nil {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		err := p.srv.ServeTLS(p.tls)
		p.serveEnded("tls", err)
	}()
	if p.cfg.TLSReloadInterval > 0 {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.cert.watch(p.stop, p.cfg.TLSReloadInterval)
		}()
	}
}

// advertisedHost is the host the PBX names as its own in SIP: ExternalIP, else the bound UDP
// address (unspecified, 0.0.0.0, when it binds all: then each dialog names the address the peer
// reached it at).
func (p *PBX) advertisedHost() string {
	if p.cfg.ExternalIP != "" {
		return p.cfg.ExternalIP
	}
	return p.UDPAddr().IP.String()
}

// advertisedPort is the PBX's port for transport: the TLS listener's over TLS, else the UDP and
// TCP one.
func (p *PBX) advertisedPort(transport string) int {
	if port := p.tlsPort(); port != 0 && strings.EqualFold(transport, "tls") {
		return port
	}
	return p.UDPAddr().Port
}

// tlsPort is the TLS listener's port, 0 without one.
func (p *PBX) tlsPort() int {
	if a := p.TLSAddr(); a != nil {
		return a.Port
	}
	return 0
}

// tlsAddrString is TLSAddr for logs: "" without TLS.
func (p *PBX) tlsAddrString() string {
	if a := p.TLSAddr(); a != nil {
		return a.String()
	}
	return ""
}
