package admin_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/internal/admin"
	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

const testToken = "test-token-0123456789abcdef"

// env is a running PBX (over an in-memory store, 127.0.0.0/8 trusted) with its admin API served
// by an httptest server.
type env struct {
	pbx   *pbx.PBX
	store *store.Store
	adm   *admin.Server
	srv   *httptest.Server
	logs  *b2buatest.LogBuffer
}

// start runs a PBX and its admin API until the test ends.
func start(t *testing.T, cfg pbx.Config) *env {
	t.Helper()
	s, err := store.Open(context.Background(), "sqlite::memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	cfg.SIP, cfg.Domain = "127.0.0.1:0", "pbx.test"
	cfg.Trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	logs := &b2buatest.LogBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := pbx.New(cfg, pbx.WithStore(s), pbx.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	adm, err := admin.New(context.Background(), admin.Config{PBX: p, Token: testToken, Logger: log, MaxBody: 4096})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	adm.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		adm.Close()
		srv.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		if t.Failed() && testing.Verbose() {
			t.Logf("PBX log:\n%s", logs.String())
		}
	})
	return &env{pbx: p, store: s, adm: adm, srv: srv, logs: logs}
}

// do sends a request with the test token and returns the status and body.
func (e *env) do(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	return e.doAuth(t, method, path, body, "Bearer "+testToken)
}

// doAuth is do with the Authorization header given ("" none).
func (e *env) doAuth(t *testing.T, method, path, body, auth string) (int, string) {
	t.Helper()
	return e.send(t, method, path, body, auth, "application/json")
}

// doRaw is do with the Content-Type given.
func (e *env) doRaw(t *testing.T, method, path, body, contentType string) (int, string) {
	t.Helper()
	return e.send(t, method, path, body, "Bearer "+testToken, contentType)
}

func (e *env) send(t *testing.T, method, path, body, auth, contentType string) (int, string) {
	t.Helper()
	var rd io.Reader
	h := http.Header{}
	if auth != "" {
		h.Set("Authorization", auth)
	}
	if body != "" {
		rd = strings.NewReader(body)
		h.Set("Content-Type", contentType)
	}
	res, b := e.request(t, method, path, rd, h)
	return res.StatusCode, string(b)
}

// request sends a request with the headers h and returns the response and its body.
func (e *env) request(t *testing.T, method, path string, body io.Reader, h http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, b
}

// decode parses body into v, failing the test when it is not JSON.
func decode(t *testing.T, body string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("not JSON (%v): %q", err, body)
	}
}

// errorOf returns the "error" of an error body, failing when it has none.
func errorOf(t *testing.T, body string) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	decode(t, body, &e)
	if e.Error == "" {
		t.Fatalf("no error message in %q", body)
	}
	return e.Error
}

// addExt adds an extension straight to the store.
func (e *env) addExt(t *testing.T, number string) {
	t.Helper()
	x := &store.Extension{Number: number, Name: "Ext " + number, Enabled: true}
	if err := x.SetPassword("pbx.test", "pw"+number+"xyz"); err != nil {
		t.Fatal(err)
	}
	if err := e.store.CreateExtension(context.Background(), x); err != nil {
		t.Fatal(err)
	}
}

// callee makes extension 200 with a test phone registered (straight in the store) and returns
// the phone, and a caller phone.
func (e *env) phones(t *testing.T) (caller, callee *b2buatest.Phone) {
	t.Helper()
	e.addExt(t, "200")
	callee = b2buatest.NewPhone(t, e.pbx.UDPAddr())
	err := e.store.PutBinding(context.Background(), store.Binding{Extension: "200", Contact: "sip:200@" + callee.Addr(),
		Source: callee.Addr(), Transport: "udp", ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return b2buatest.NewPhone(t, e.pbx.UDPAddr()), callee
}

// waitCalls waits until the PBX has n calls in progress.
func (e *env) waitCalls(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for e.pbx.ActiveCalls() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls in progress, want %d", e.pbx.ActiveCalls(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// byeBoth answers the BYEs the PBX sends both phones when it hangs up their call.
func byeBoth(t *testing.T, caller, callee *b2buatest.Phone) {
	t.Helper()
	callee.Respond(callee.WaitRequest(sip.BYE), 200, "OK", "")
	caller.Respond(caller.WaitRequest(sip.BYE), 200, "OK", "")
}
