package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/internal/testenv"
)

// serveHTTP runs `officepbx serve --http` with args until the returned stop is called, and
// returns the HTTP address once /readyz answers 200, with what serve wrote to stderr.
func serveHTTP(t *testing.T, db string, args ...string) (addr string, stderr *b2buatest.LogBuffer, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(t.Context())
	stderr = &b2buatest.LogBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "--sip", "127.0.0.1:0", "--db", db, "--http", addr}, args...), io.Discard, stderr)
	}()
	stop = func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d:\n%s", code, stderr.String())
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		code, body := httpGet(t, addr, "/readyz", "")
		if code == 200 && body == "ready\n" {
			return addr, stderr, stop
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("/readyz: %d %q", code, body)
		}
	}
}

// httpGet returns the status and body of GET path with the token given ("" none); 0 when the
// server does not answer.
func httpGet(t *testing.T, addr, path, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, ""
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

var printedToken = regexp.MustCompile(`token \(shown once[^\n]*\n\n\s+(\S+)\n`)

// TestServeAdminToken: the first start generates the API token and prints it once; a restart on
// the same database takes it again without printing it; --api-token and PBX_API_TOKEN replace it.
// The console is served beside the API.
func TestServeAdminToken(t *testing.T) {
	db := testenv.SQLiteDSN(t)
	addr, stderr, stop := serveHTTP(t, db)
	m := printedToken.FindStringSubmatch(stderr.String())
	if m == nil {
		stop()
		t.Fatalf("no token printed:\n%s", stderr.String())
	}
	token := m[1]
	if code, _ := httpGet(t, addr, "/api/extensions", ""); code != 401 {
		t.Errorf("without the token: %d", code)
	}
	// The first start also made the demo extensions 100-103.
	if code, body := httpGet(t, addr, "/api/extensions", token); code != 200 || strings.Count(body, `"number":`) != 4 || !strings.Contains(body, `"number": "103"`) {
		t.Errorf("with the token: %d %s", code, body)
	}
	if code, body := httpGet(t, addr, "/", ""); code != 200 || !strings.Contains(body, "<title>pbxkit console</title>") {
		t.Errorf("console: %d %.80q", code, body)
	}
	if code, body := httpGet(t, addr, "/healthz", ""); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	stop()

	addr, stderr, stop = serveHTTP(t, db)
	if strings.Contains(stderr.String(), token) || printedToken.MatchString(stderr.String()) {
		t.Errorf("the restart printed a token:\n%s", stderr.String())
	}
	if code, _ := httpGet(t, addr, "/api/calls", token); code != 200 {
		t.Errorf("the stored token after a restart: %d", code)
	}
	stop()

	flagToken := "flag-token-0123456789"
	addr, _, stop = serveHTTP(t, db, "--api-token", flagToken)
	if code, _ := httpGet(t, addr, "/api/calls", flagToken); code != 200 {
		t.Errorf("--api-token: %d", code)
	}
	if code, _ := httpGet(t, addr, "/api/calls", token); code != 401 {
		t.Errorf("the stored token beside --api-token: %d", code)
	}
	stop()

	t.Setenv("PBX_API_TOKEN", "env-token-0123456789")
	addr, _, stop = serveHTTP(t, db)
	if code, _ := httpGet(t, addr, "/api/calls", "env-token-0123456789"); code != 200 {
		t.Errorf("PBX_API_TOKEN: %d", code)
	}
	stop()
}
