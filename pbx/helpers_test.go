package pbx_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"go.uber.org/goleak"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// The PBX's tests use the call core's test phones: raw SIP endpoints over UDP or TCP.
type (
	uaClient  = b2buatest.Phone
	reqSpec   = b2buatest.Request
	logBuffer = b2buatest.LogBuffer
)

func newClient(t testing.TB, to *net.UDPAddr) *uaClient { return b2buatest.NewPhone(t, to) }

// phone is a callee the tests drive: over UDP or TCP.
type phone = b2buatest.Callee

// cancelOf is the caller's CANCEL of the INVITE inv.
func cancelOf(inv *sip.Request) string { return b2buatest.Cancel(inv) }

type testPBX struct {
	*pbx.PBX
	store *store.Store
	logs  *logBuffer
	addr  *net.UDPAddr
}

// startPBX runs a PBX on 127.0.0.1:0 over an in-memory store, stopped when the test ends.
func startPBX(t testing.TB, cfg pbx.Config, opts ...pbx.Option) *testPBX {
	t.Helper()
	return startPBXOn(t, "sqlite::memory:", cfg, opts...)
}

// startPBXOn is startPBX over the store at dsn (testenv.PostgresDSN, say).
func startPBXOn(t testing.TB, dsn string, cfg pbx.Config, opts ...pbx.Option) *testPBX {
	t.Helper()
	s, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	// Goroutines running now (the test's, the store's) are the baseline: once this PBX has shut
	// down, none of its own may be left (a per-test leak check, beside goleak in TestMain).
	baseline := goleak.IgnoreCurrent()
	if cfg.SIP == "" {
		cfg.SIP = "127.0.0.1:0"
	}
	if cfg.Domain == "" {
		cfg.Domain = "pbx.test"
	}
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := pbx.New(cfg, append([]pbx.Option{pbx.WithStore(s), pbx.WithLogger(log)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		if err := goleak.Find(baseline); err != nil {
			t.Errorf("goroutines left after the PBX shut down: %v", err)
		}
	})
	t.Cleanup(func() {
		if t.Failed() && testing.Verbose() {
			t.Logf("PBX log:\n%s", logs.String())
		}
	})
	return &testPBX{PBX: p, store: s, logs: logs, addr: p.UDPAddr()}
}

func (tp *testPBX) addExt(t testing.TB, number, password string) {
	t.Helper()
	e := &store.Extension{Number: number, Name: "Ext " + number, Enabled: true}
	if err := e.SetPassword(tp.Config().Domain, password); err != nil {
		t.Fatal(err)
	}
	if err := tp.store.CreateExtension(context.Background(), e); err != nil {
		t.Fatal(err)
	}
}

// authorize answers a challenge in res for the request r, returning the header line to add.
func authorize(t testing.TB, res *sip.Response, r reqSpec, user, password, alg string) string {
	t.Helper()
	chalHeader, credHeader := "WWW-Authenticate", "Authorization"
	if res.StatusCode == 407 {
		chalHeader, credHeader = "Proxy-Authenticate", "Proxy-Authorization"
	}
	var chal *digest.Challenge
	for _, h := range res.GetHeaders(chalHeader) {
		c, err := digest.ParseChallenge(h.Value())
		if err != nil {
			t.Fatalf("bad challenge %q: %v", h.Value(), err)
		}
		if c.Algorithm == alg {
			chal = c
		}
	}
	if chal == nil {
		t.Fatalf("no %s challenge in %d response", alg, res.StatusCode)
	}
	uri := r.URI
	if uri == "" {
		uri = "sip:" + r.To + "@pbx.test"
	}
	cred, err := digest.Digest(chal, digest.Options{Method: r.Method, URI: uri, Username: user, Password: password, Count: 1, Cnonce: fmt.Sprint(rand.Int64())})
	if err != nil {
		t.Fatal(err)
	}
	return credHeader + ": " + cred.String()
}

// header joins the values of a message's headers called name.
func header(m interface{ GetHeaders(string) []sip.Header }, name string) string {
	var vs []string
	for _, h := range m.GetHeaders(name) {
		vs = append(vs, h.Value())
	}
	return strings.Join(vs, " | ")
}

// tcpExchange sends one request over a new TCP connection and returns the raw first final
// response.
func tcpExchange(t testing.TB, addr, method string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msg := fmt.Sprintf("%s sip:200@pbx.test SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK-tcp%d\r\nMax-Forwards: 70\r\n"+
		"From: <sip:100@pbx.test>;tag=t1\r\nTo: <sip:200@pbx.test>\r\nCall-ID: tcp-%d@test\r\nCSeq: 1 %s\r\nContent-Length: 0\r\n\r\n",
		method, conn.LocalAddr(), rand.Int64(), rand.Int64(), method)
	if _, err := conn.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var buf bytes.Buffer
	tmp := make([]byte, 4096)
	for !bytes.Contains(buf.Bytes(), []byte("\r\n\r\n")) {
		n, err := conn.Read(tmp)
		if err != nil {
			t.Fatalf("tcp read: %v (got %q)", err, buf.String())
		}
		buf.Write(tmp[:n])
	}
	return buf.String()
}

// hangUp ends an answered call with the caller's BYE (CSeq cseq): the PBX answers it and BYEs
// the callee, and the call leaves no call or dialog behind.
func hangUp(t *testing.T, tp *testPBX, caller *uaClient, callee phone, inv *sip.Request, ok *sip.Response, cseq int) {
	t.Helper()
	b2buatest.HangUp(t, caller, callee, inv, ok, cseq)
	waitIdle(t, tp)
}
