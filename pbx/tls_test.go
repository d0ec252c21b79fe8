package pbx_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/internal/testenv"
	"github.com/pbxkit/pbxkit/pbx"
)

// tlsPBX runs a PBX serving TLS on 127.0.0.1 with a certificate made in the test; 127.0.0.0/8 is
// trusted (no digest) unless cfg says otherwise. Extension 200 exists.
func tlsPBX(t *testing.T, cfg pbx.Config) (*testPBX, testenv.Cert) {
	t.Helper()
	cert := testenv.NewCert(t, "pbx.test")
	cfg.TLS = "127.0.0.1:0"
	cfg.TLSCert, cfg.TLSKey = cert.Write(t, t.TempDir())
	if cfg.Trusted == nil {
		cfg.Trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	}
	tp := startPBX(t, cfg)
	tp.addExt(t, "200", "pw200")
	return tp, cert
}

// registerOver registers ext with contact over the phone's connection.
func registerOver(t *testing.T, p *uaClient, ext, contact string) {
	t.Helper()
	res := p.Do(p.Build(registerSpec(ext, "reg-"+ext+"@test", 1, "Contact: <"+contact+">", "Expires: 600")))
	if res.StatusCode != 200 {
		t.Fatalf("REGISTER %s over %s: %d %s", ext, p.Transport(), res.StatusCode, res.Reason)
	}
}

// wantTLSContact checks that m's Contact is the PBX at its TLS port, over TLS: with
// ";transport=tls", or as a sips: URI when sips is set.
func wantTLSContact(t *testing.T, tp *testPBX, what string, m interface{ GetHeader(string) sip.Header }, sips bool) {
	t.Helper()
	c, ok := m.GetHeader("Contact").(*sip.ContactHeader)
	if !ok {
		t.Fatalf("%s: no Contact", what)
	}
	u := c.Address
	tr, _ := u.UriParams.Get("transport")
	switch {
	case u.Port != tp.TLSAddr().Port || u.Host != "127.0.0.1":
		t.Fatalf("%s: Contact %s, want the TLS listener %s", what, u.String(), tp.TLSAddr())
	case sips && (u.Scheme != "sips" || tr != ""):
		t.Fatalf("%s: Contact %s, want sips:127.0.0.1:%d", what, u.String(), u.Port)
	case !sips && (u.Scheme != "sip" || tr != "tls"):
		t.Fatalf("%s: Contact %s, want ;transport=tls", what, u.String())
	}
}

// TestCallOverTLS: caller and callee reach the PBX over TLS (a certificate made in the test,
// checked by the phones). The callee registers over its TLS connection and is called over that
// same connection (no other connection is opened); the PBX's Via and Contact toward both say TLS
// and name the TLS port; the call is set up and hung up as over UDP.
func TestCallOverTLS(t *testing.T) {
	tp, cert := tlsPBX(t, pbx.Config{})
	callee := b2buatest.NewTLSPhone(t, tp.TLSAddr().String(), cert.ClientConfig())
	registerOver(t, callee, "200", callee.Contact("200"))
	bs, err := tp.store.Bindings(context.Background(), "200")
	if err != nil || len(bs) != 1 || bs[0].Transport != "tls" || bs[0].Source != callee.Addr() {
		t.Fatalf("binding %+v %v", bs, err)
	}
	caller := b2buatest.NewTLSPhone(t, tp.TLSAddr().String(), cert.ClientConfig())
	inv, ok, bInv := b2buatest.AnsweredCall(t, caller, callee)

	via := bInv.Via()
	if via.Transport != "TLS" || via.Port != tp.TLSAddr().Port {
		t.Fatalf("INVITE to the TLS phone with Via %s", via.Value())
	}
	wantTLSContact(t, tp, "INVITE to the callee", bInv, false)
	wantTLSContact(t, tp, "200 to the caller", ok, false)
	if n := metricSum(t, tp.Metrics(), "pbxkit_sip_connections", nil); n != 2 {
		t.Fatalf("%v connections open, want the phones' two: the PBX must call over the callee's", n)
	}
	hangUp(t, tp, caller, callee, inv, ok, 2)
}

// TestCallOverTLSWithSIPSURIs: a phone that registers a sips: contact is called at a sips:
// Request-URI over its TLS connection, and a caller that calls a sips: URI gets a sips: Contact:
// the PBX keeps TLS on every hop where the peer asked for it (RFC 3261 §26.2.2).
func TestCallOverTLSWithSIPSURIs(t *testing.T) {
	tp, cert := tlsPBX(t, pbx.Config{})
	callee := b2buatest.NewTLSPhone(t, tp.TLSAddr().String(), cert.ClientConfig())
	registerOver(t, callee, "200", "sips:200@"+callee.Addr())
	caller := b2buatest.NewTLSPhone(t, tp.TLSAddr().String(), cert.ClientConfig())
	msg := caller.Build(b2buatest.Request{Method: "INVITE", URI: "sips:200@pbx.test", From: "100", To: "200",
		Headers: []string{"Contact: <sips:100@" + caller.Addr() + ">", "Content-Type: application/sdp"}, Body: b2buatest.SDP})
	m, err := sip.ParseMessage([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	inv := m.(*sip.Request)
	caller.Send(msg)
	bInv := callee.WaitRequest(sip.INVITE)
	if bInv.Recipient.Scheme != "sips" {
		t.Fatalf("INVITE to a sips: contact at %s", bInv.Recipient.String())
	}
	wantTLSContact(t, tp, "INVITE to the callee", bInv, true)
	callee.Respond(bInv, 200, "OK", b2buatest.CalleeSDP)
	ok := caller.WaitResponse(200)
	wantTLSContact(t, tp, "200 to the caller", ok, true)
	callee.WaitRequest(sip.ACK)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	hangUp(t, tp, caller, callee, inv, ok, 2)
}

// TestTLSCertificateReload: the certificate files are replaced (as a renewal does: new files
// renamed over the old) and new connections get the new certificate without a restart; a
// connection opened before goes on with its own. A replacement that does not load (a key that
// does not match) is logged and leaves the certificate in use.
func TestTLSCertificateReload(t *testing.T) {
	first, second := testenv.NewCert(t, "first"), testenv.NewCert(t, "second")
	dir := t.TempDir()
	certFile, keyFile := first.Write(t, dir)
	tp := startPBX(t, pbx.Config{TLS: "127.0.0.1:0", TLSCert: certFile, TLSKey: keyFile, TLSReloadInterval: 20 * time.Millisecond,
		Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	tp.addExt(t, "200", "pw200")
	addr := tp.TLSAddr().String()
	if cn := testenv.ServedCN(t, addr); cn != "first" {
		t.Fatalf("served %q", cn)
	}
	old := b2buatest.NewTLSPhone(t, addr, &tls.Config{RootCAs: first.Roots, ServerName: "pbx.test"})

	second.Write(t, dir)
	waitServed(t, addr, "second")
	registerOver(t, old, "200", old.Contact("200")) // the open connection still works

	// A half-finished renewal: the third certificate beside the second's key.
	third := testenv.NewCert(t, "third")
	third.KeyPEM = second.KeyPEM
	third.Write(t, dir)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(tp.logs.String(), "tls certificate changed but does not load") {
		if time.Now().After(deadline) {
			t.Fatal("the broken pair was not logged")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if cn := testenv.ServedCN(t, addr); cn != "second" {
		t.Fatalf("after a broken renewal served %q, want the certificate in use", cn)
	}
}

// TestReloadTLS: with the file watch off, ReloadTLS (officepbx: SIGHUP) reads the files again.
func TestReloadTLS(t *testing.T) {
	first, second := testenv.NewCert(t, "first"), testenv.NewCert(t, "second")
	dir := t.TempDir()
	certFile, keyFile := first.Write(t, dir)
	tp := startPBX(t, pbx.Config{TLS: "127.0.0.1:0", TLSCert: certFile, TLSKey: keyFile, TLSReloadInterval: -1})
	addr := tp.TLSAddr().String()
	second.Write(t, dir)
	time.Sleep(50 * time.Millisecond)
	if cn := testenv.ServedCN(t, addr); cn != "first" {
		t.Fatalf("served %q before ReloadTLS", cn)
	}
	if err := tp.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	if cn := testenv.ServedCN(t, addr); cn != "second" {
		t.Fatalf("served %q after ReloadTLS", cn)
	}
	plain := startPBX(t, pbx.Config{})
	if err := plain.ReloadTLS(); !errors.Is(err, pbx.ErrNoTLS) {
		t.Fatalf("ReloadTLS without TLS: %v", err)
	}
}

// waitServed waits until new connections to addr get the certificate named cn.
func waitServed(t *testing.T, addr, cn string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := testenv.ServedCN(t, addr)
		if got == cn {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still served %q, want %q", got, cn)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTLSHandshakeTimeout: a client that connects to the TLS port and says nothing, or speaks
// plain SIP to it, is disconnected: at TLSHandshakeTimeout, or at once.
func TestTLSHandshakeTimeout(t *testing.T) {
	tp, _ := tlsPBX(t, pbx.Config{TLSHandshakeTimeout: 200 * time.Millisecond, ConnIdleTimeout: time.Hour})
	silent, err := net.Dial("tcp", tp.TLSAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	start := time.Now()
	wantClosed(t, silent, 5*time.Second)
	if d := time.Since(start); d < 150*time.Millisecond || d > 3*time.Second {
		t.Fatalf("closed after %v, want about 200ms", d)
	}

	plain, err := net.Dial("tcp", tp.TLSAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.Write([]byte("OPTIONS sip:pbx.test SIP/2.0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	wantClosed(t, plain, 5*time.Second)
	if n := metricSum(t, tp.Metrics(), "pbxkit_sip_connections_closed_total", map[string]string{"reason": "tls_handshake"}); n != 2 {
		t.Fatalf("%v handshake closures counted, want 2", n)
	}
}

// wantClosed reads c until the PBX closes it (anything it sends, a TLS alert, is skipped).
func wantClosed(t *testing.T, c net.Conn, within time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(within))
	buf := make([]byte, 1024)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open after %v", within)
		}
		if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
			t.Logf("closed with %v", err)
		}
		return
	}
}

// TestTLSConnectionLimits: TLS connections are held to the limits and timeouts of TCP ones: one
// past MaxConnectionsPerSource is refused, and a connection that carries no message for
// ConnIdleTimeout (after its handshake) is closed.
func TestTLSConnectionLimits(t *testing.T) {
	tp, cert := tlsPBX(t, pbx.Config{Trusted: []netip.Prefix{}, MaxConnectionsPerSource: 2, ConnIdleTimeout: 300 * time.Millisecond})
	addr := tp.TLSAddr().String()
	var held []*tls.Conn
	for range 2 {
		c, err := tls.Dial("tcp", addr, cert.ClientConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	if c, err := tls.Dial("tcp", addr, cert.ClientConfig()); err == nil {
		// The refusal may land after the client's side of the handshake: then the first read fails.
		wantClosed(t, c, 5*time.Second)
		c.Close()
	}
	if n := metricSum(t, tp.Metrics(), "pbxkit_sip_connections_refused_total", map[string]string{"reason": "max_per_source"}); n != 1 {
		t.Fatalf("%v refusals counted, want 1", n)
	}
	start := time.Now()
	wantClosed(t, held[0], 5*time.Second)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("idle TLS connection closed after %v", d)
	}
	if n := metricSum(t, tp.Metrics(), "pbxkit_sip_connections_closed_total", map[string]string{"reason": "idle"}); n < 1 {
		t.Fatal("idle closure not counted")
	}
}

// TestShutdownOverTLS: shutting down hangs up a call whose phones are on TLS: both get a BYE over
// their connections, Shutdown waits for the answers, and the connections close after.
func TestShutdownOverTLS(t *testing.T) {
	tp, cert := tlsPBX(t, pbx.Config{})
	callee := b2buatest.NewTLSPhone(t, tp.TLSAddr().String(), cert.ClientConfig())
	registerOver(t, callee, "200", callee.Contact("200"))
	caller := b2buatest.NewTLSPhone(t, tp.TLSAddr().String(), cert.ClientConfig())
	b2buatest.AnsweredCall(t, caller, callee)
	done := make(chan error, 1)
	go func() { done <- tp.Shutdown(context.Background()) }()
	byeB, byeA := callee.WaitRequest(sip.BYE), caller.WaitRequest(sip.BYE)
	select {
	case err := <-done:
		t.Fatalf("shutdown returned (%v) before its BYEs were answered", err)
	case <-time.After(200 * time.Millisecond):
	}
	callee.Respond(byeB, 200, "OK", "")
	caller.Respond(byeA, 200, "OK", "")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if m := caller.RecvMsg(300 * time.Millisecond); m != nil {
		t.Fatalf("after shutdown the caller got %s", m.String())
	}
	if _, err := net.DialTimeout("tcp", tp.TLSAddr().String(), time.Second); err == nil {
		t.Fatal("the TLS port still accepts after shutdown")
	}
}

// TestTLSCertificateMissingFailsNew: a certificate that does not load stops New, naming the file,
// as a port in use does: a PBX that cannot serve what it was told to does not start.
func TestTLSCertificateMissingFailsNew(t *testing.T) {
	dir := t.TempDir()
	_, err := pbx.New(pbx.Config{SIP: "127.0.0.1:0", TLS: "127.0.0.1:0", TLSCert: dir + "/none.pem", TLSKey: dir + "/none.key",
		Database: "sqlite::memory:"})
	if err == nil || !strings.Contains(err.Error(), "none.pem") {
		t.Fatalf("New with a missing certificate: %v", err)
	}
}
