package pbx_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/internal/testenv"
	"github.com/pbxkit/pbxkit/pbx"
)

// externalIP is the public address the PBX of TestExternalIP advertises (TEST-NET-1).
const externalIP = "192.0.2.44"

// TestExternalIP: a PBX bound to 127.0.0.1 (its relay too) but told its public address names only
// the public one, toward both legs: the caller on UDP, the callee on TLS. Every message the phones
// get from it is checked: the Via of its requests, every Contact and Record-Route, the From and To
// hosts of the B-leg, the SDP's c= and o= lines; and the bound address (127.0.0.1 with the PBX's
// ports, or anywhere in SDP) appears nowhere.
func TestExternalIP(t *testing.T) {
	cert := testenv.NewCert(t, "pbx.test")
	certFile, keyFile := cert.Write(t, t.TempDir())
	lo := freeEvenRange(t, 8)
	tp := startPBX(t, pbx.Config{ExternalIP: externalIP, RTPPortMin: lo, RTPPortMax: lo + 7,
		TLS: "127.0.0.1:0", TLSCert: certFile, TLSKey: keyFile,
		Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	tp.addExt(t, "200", "pw200")
	check := advertisedChecker{t: t, bound: []string{tp.UDPAddr().String(), tp.TLSAddr().String()}}

	callee := b2buatest.NewTLSPhone(t, tp.TLSAddr().String(), cert.ClientConfig())
	registerOver(t, callee, "200", callee.Contact("200"))
	caller := newClient(t, tp.addr)
	msg, inv := invite(caller)
	caller.Send(msg)

	bInv := check.request(callee, sip.INVITE, true)
	if bInv.Via().Port != tp.TLSAddr().Port {
		t.Fatalf("Via %s toward the TLS callee, want the TLS port", bInv.Via().Value())
	}
	callee.Respond(bInv, 180, "Ringing", "")
	check.response(caller, 180)
	callee.Respond(bInv, 200, "OK", b2buatest.CalleeSDP)
	ok := check.response(caller, 200)
	check.request(callee, sip.ACK, true)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))

	// The callee hangs up: the caller gets the PBX's BYE.
	callee.Send(callee.InDialogAsCallee("BYE", bInv, 2, ""))
	check.response(callee, 200)
	bye := check.request(caller, sip.BYE, false)
	caller.Respond(bye, 200, "OK", "")
	waitIdle(t, tp)
	if check.seen < 6 {
		t.Fatalf("checked %d messages", check.seen)
	}
}

// advertisedChecker checks messages a phone got from the PBX for the addresses they name.
type advertisedChecker struct {
	t     *testing.T
	bound []string // the PBX's bound addresses, ip:port
	seen  int
}

// request waits for the phone's next request with method and checks it; bLeg: in the PBX's dialog
// toward the callee, whose From and To name the PBX too.
func (c *advertisedChecker) request(p *uaClient, method sip.RequestMethod, bLeg bool) *sip.Request {
	c.t.Helper()
	deadline := time.Now().Add(b2buatest.Wait)
	for time.Now().Before(deadline) {
		m, raw, _ := p.RecvRaw(time.Until(deadline))
		req, ok := m.(*sip.Request)
		if !ok || req.Method != method {
			continue
		}
		c.message(m, raw)
		if via := req.Via(); via.Host != externalIP {
			c.t.Fatalf("%s with Via %s", method, via.Value())
		}
		if bLeg {
			for _, u := range []sip.Uri{req.From().Address, req.To().Address} {
				if u.Host != externalIP {
					c.t.Fatalf("%s with From/To %s", method, u.String())
				}
			}
		}
		return req
	}
	c.t.Fatalf("no %s", method)
	return nil
}

// response waits for the phone's next response with code and checks it.
func (c *advertisedChecker) response(p *uaClient, code int) *sip.Response {
	c.t.Helper()
	deadline := time.Now().Add(b2buatest.Wait)
	for time.Now().Before(deadline) {
		m, raw, _ := p.RecvRaw(time.Until(deadline))
		res, ok := m.(*sip.Response)
		if !ok {
			continue
		}
		c.message(m, raw)
		if res.StatusCode == code {
			return res
		}
	}
	c.t.Fatalf("no %d", code)
	return nil
}

// message checks what every message names as the PBX: Contact, Record-Route, SDP.
func (c *advertisedChecker) message(m sip.Message, raw []byte) {
	c.t.Helper()
	c.seen++
	what := strings.SplitN(string(raw), "\r\n", 2)[0]
	for _, b := range c.bound {
		if strings.Contains(string(raw), b) {
			c.t.Fatalf("%s names the bound address %s:\n%s", what, b, raw)
		}
	}
	for _, h := range m.GetHeaders("Contact") {
		if ch, ok := h.(*sip.ContactHeader); !ok || ch.Address.Host != externalIP {
			c.t.Fatalf("%s with Contact %s", what, h.Value())
		}
	}
	for _, h := range m.GetHeaders("Record-Route") {
		if !strings.Contains(h.Value(), externalIP) {
			c.t.Fatalf("%s with Record-Route %s", what, h.Value())
		}
	}
	body := string(m.Body())
	if body == "" {
		return
	}
	if strings.Contains(body, "127.0.0.1") {
		c.t.Fatalf("%s: SDP names the bound address:\n%s", what, body)
	}
	for _, prefix := range []string{"c=", "o="} {
		n := 0
		for _, l := range strings.Split(body, "\r\n") {
			if strings.HasPrefix(l, prefix) {
				n++
				if !strings.HasSuffix(l, "IN IP4 "+externalIP) {
					c.t.Fatalf("%s: SDP line %q", what, l)
				}
			}
		}
		if n == 0 {
			c.t.Fatalf("%s: SDP without %s line:\n%s", what, prefix, body)
		}
	}
}
