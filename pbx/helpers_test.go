package pbx_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"go.uber.org/goleak"

	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type testPBX struct {
	*pbx.PBX
	store *store.Store
	logs  *logBuffer
	addr  *net.UDPAddr
}

// startPBX runs a PBX on 127.0.0.1:0 over an in-memory store, stopped when the test ends.
func startPBX(t testing.TB, cfg pbx.Config, opts ...pbx.Option) *testPBX {
	t.Helper()
	s, err := store.Open(context.Background(), "sqlite::memory:")
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

// uaClient is a raw UDP SIP client: it writes requests as text and parses what comes back.
type uaClient struct {
	t    testing.TB
	conn *net.UDPConn
	to   *net.UDPAddr
}

func newClient(t testing.TB, to *net.UDPAddr) *uaClient {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &uaClient{t: t, conn: conn, to: to}
}

func (c *uaClient) addr() string { return c.conn.LocalAddr().String() }

func (c *uaClient) send(msg string) {
	c.t.Helper()
	if _, err := c.conn.WriteToUDP([]byte(msg), c.to); err != nil {
		c.t.Fatal(err)
	}
}

// recv returns the next response, or nil after timeout.
func (c *uaClient) recv(timeout time.Duration) (*sip.Response, []byte) {
	c.t.Helper()
	buf := make([]byte, 65535)
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	n, _, err := c.conn.ReadFromUDP(buf)
	if err != nil {
		return nil, nil
	}
	msg, err := sip.ParseMessage(buf[:n])
	if err != nil {
		c.t.Fatalf("unparseable answer %q: %v", buf[:n], err)
	}
	res, ok := msg.(*sip.Response)
	if !ok {
		c.t.Fatalf("got a request, want a response: %s", msg.String())
	}
	return res, buf[:n]
}

// do sends msg and returns the first non-100 response.
func (c *uaClient) do(msg string) *sip.Response {
	c.t.Helper()
	res, _ := c.doRaw(msg)
	return res
}

func (c *uaClient) doRaw(msg string) (*sip.Response, []byte) {
	c.t.Helper()
	c.send(msg)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		res, raw := c.recv(time.Until(deadline))
		if res == nil {
			break
		}
		if res.StatusCode != 100 {
			return res, raw
		}
	}
	c.t.Fatalf("no response to:\n%s", msg)
	return nil, nil
}

// req builds a request from the caller's address; extra lines are added after the defaults, and a
// default is left out when extra has a line with the same header name.
type reqSpec struct {
	method  string
	uri     string
	from    string // user part
	to      string // user part
	callID  string
	cseq    int
	branch  string
	headers []string
	body    string
}

func (c *uaClient) build(r reqSpec) string {
	if r.uri == "" {
		r.uri = "sip:" + r.to + "@pbx.test"
	}
	if r.callID == "" {
		r.callID = fmt.Sprintf("call-%d@test", rand.Int64())
	}
	if r.cseq == 0 {
		r.cseq = 1
	}
	if r.branch == "" {
		r.branch = fmt.Sprintf("z9hG4bK-%d", rand.Int64())
	}
	defaults := []string{
		fmt.Sprintf("Via: SIP/2.0/UDP %s;branch=%s;rport", c.addr(), r.branch),
		"Max-Forwards: 70",
		fmt.Sprintf("From: <sip:%s@pbx.test>;tag=ft%d", r.from, rand.Int32()),
		fmt.Sprintf("To: <sip:%s@pbx.test>", r.to),
		"Call-ID: " + r.callID,
		fmt.Sprintf("CSeq: %d %s", r.cseq, r.method),
	}
	var lines []string
	for _, d := range defaults {
		name, _, _ := strings.Cut(d, ":")
		overridden := false
		for _, h := range r.headers {
			if n, _, _ := strings.Cut(h, ":"); strings.EqualFold(n, name) {
				overridden = true
			}
		}
		if !overridden {
			lines = append(lines, d)
		}
	}
	lines = append(lines, r.headers...)
	hasCL := false
	for _, h := range r.headers {
		if n, _, _ := strings.Cut(h, ":"); strings.EqualFold(n, "Content-Length") || n == "l" {
			hasCL = true
		}
	}
	if !hasCL {
		lines = append(lines, fmt.Sprintf("Content-Length: %d", len(r.body)))
	}
	return r.method + " " + r.uri + " SIP/2.0\r\n" + strings.Join(lines, "\r\n") + "\r\n\r\n" + r.body
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
	uri := r.uri
	if uri == "" {
		uri = "sip:" + r.to + "@pbx.test"
	}
	cred, err := digest.Digest(chal, digest.Options{Method: r.method, URI: uri, Username: user, Password: password, Count: 1, Cnonce: fmt.Sprint(rand.Int64())})
	if err != nil {
		t.Fatal(err)
	}
	return credHeader + ": " + cred.String()
}

func header(res *sip.Response, name string) string {
	var vs []string
	for _, h := range res.GetHeaders(name) {
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

// recvMsg returns the next message of any kind, or nil after timeout.
func (c *uaClient) recvMsg(timeout time.Duration) sip.Message {
	c.t.Helper()
	buf := make([]byte, 65535)
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	n, _, err := c.conn.ReadFromUDP(buf)
	if err != nil {
		return nil
	}
	msg, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
	if err != nil {
		c.t.Fatalf("unparseable message %q: %v", buf[:n], err)
	}
	return msg
}

// waitRequest returns the next request with method, skipping anything else (retransmitted
// responses, other requests), or fails the test.
func (c *uaClient) waitRequest(method sip.RequestMethod) *sip.Request {
	c.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if req, ok := c.recvMsg(time.Until(deadline)).(*sip.Request); ok && req.Method == method {
			return req
		}
	}
	c.t.Fatalf("no %s within 5s", method)
	return nil
}

// waitResponse returns the next response with code (skipping others), or fails the test.
func (c *uaClient) waitResponse(code int) *sip.Response {
	c.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var got []int
	for time.Now().Before(deadline) {
		m := c.recvMsg(time.Until(deadline))
		if res, ok := m.(*sip.Response); ok {
			if res.StatusCode == code {
				return res
			}
			got = append(got, res.StatusCode)
		}
	}
	c.t.Fatalf("no %d within 5s (got %v)", code, got)
	return nil
}

// respond answers req as a phone would, with a fixed To tag and its own Contact.
// acceptCancel is a ringing phone taking the PBX's CANCEL of inv: 200 to the CANCEL, 487 to the
// INVITE.
func (c *uaClient) acceptCancel(inv *sip.Request) {
	c.t.Helper()
	c.respond(c.waitRequest(sip.CANCEL), 200, "OK", "")
	c.respond(inv, 487, "Request Terminated", "")
}

func (c *uaClient) respond(req *sip.Request, code int, reason string, body string) {
	c.t.Helper()
	res := sip.NewResponseFromRequest(req, code, reason, []byte(body))
	if _, has := req.To().Params.Get("tag"); !has && code > 100 {
		res.To().Params.Add("tag", "callee-tag")
	}
	res.AppendHeader(sip.NewHeader("Contact", "<sip:callee@"+c.addr()+">"))
	if body != "" {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	c.send(res.String())
}

// inDialog builds a request in the dialog a 2xx set up, from the caller's side.
func (c *uaClient) inDialog(method string, inv *sip.Request, ok *sip.Response, cseq int) string {
	target, _ := remoteTarget(ok)
	return fmt.Sprintf("%s %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-%d;rport\r\nMax-Forwards: 70\r\n"+
		"From: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %d %s\r\nContent-Length: 0\r\n\r\n",
		method, target, c.addr(), rand.Int64(), inv.From().Value(), ok.To().Value(), inv.CallID().Value(), cseq, method)
}

func remoteTarget(m interface{ GetHeader(string) sip.Header }) (string, bool) {
	h, ok := m.GetHeader("Contact").(*sip.ContactHeader)
	if !ok {
		return "", false
	}
	return h.Address.String(), true
}

// waitRequestFrom is waitRequest that also returns the address the request came from.
func (c *uaClient) waitRequestFrom(method sip.RequestMethod) (*sip.Request, *net.UDPAddr) {
	c.t.Helper()
	buf := make([]byte, 65535)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c.conn.SetReadDeadline(deadline)
		n, from, err := c.conn.ReadFromUDP(buf)
		if err != nil {
			break
		}
		msg, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
		if err != nil {
			c.t.Fatalf("unparseable message: %v", err)
		}
		if req, ok := msg.(*sip.Request); ok && req.Method == method {
			return req, from
		}
	}
	c.t.Fatalf("no %s within 5s", method)
	return nil, nil
}

// cancelOf is the caller's CANCEL of the INVITE inv (RFC 3261 §9.1: the INVITE's Via, From, To,
// Call-ID and CSeq number).
func cancelOf(inv *sip.Request) string {
	return "CANCEL " + inv.Recipient.String() + " SIP/2.0\r\nVia: " + inv.Via().Value() + "\r\nMax-Forwards: 70\r\n" +
		"From: " + inv.From().Value() + "\r\nTo: " + inv.To().Value() + "\r\nCall-ID: " + inv.CallID().Value() + "\r\n" +
		"CSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n"
}

// hangUp ends an answered call with the caller's BYE (CSeq cseq): the PBX answers it and BYEs
// the callee, and the call leaves no call or dialog behind.
func hangUp(t *testing.T, tp *testPBX, caller *uaClient, callee phone, inv *sip.Request, ok *sip.Response, cseq int) {
	t.Helper()
	caller.send(caller.inDialog("BYE", inv, ok, cseq))
	caller.waitResponse(200)
	callee.respond(callee.waitRequest(sip.BYE), 200, "OK", "")
	waitIdle(t, tp)
}

// phone is a callee the tests drive: over UDP (uaClient) or TCP (tcpPhone).
type phone interface {
	waitRequest(sip.RequestMethod) *sip.Request
	respond(req *sip.Request, code int, reason string, body string)
}
