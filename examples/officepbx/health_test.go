package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/internal/testenv"
	"github.com/pbxkit/pbxkit/pbx"
)

// fakeHealth is a PBX whose health the test sets.
type fakeHealth struct {
	mu  sync.Mutex
	err error
}

func (f *fakeHealth) Ready(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// TestHealthz: /healthz answers 503 with the reason while the PBX cannot serve (here: its TCP
// listener cannot accept), and 200 again once it can.
func TestHealthz(t *testing.T) {
	f := &fakeHealth{}
	h := healthz(f)
	get := func() (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := get(); code != 200 || body != "ok\n" {
		t.Fatalf("healthy: %d %q", code, body)
	}
	f.mu.Lock()
	f.err = fmt.Errorf("tcp %w: accept4: too many open files", pbx.ErrAcceptFailing)
	f.mu.Unlock()
	if code, body := get(); code != 503 || !strings.Contains(body, "accept failing: accept4: too many open files") {
		t.Fatalf("while the listener cannot accept: %d %q", code, body)
	}
	f.mu.Lock()
	f.err = nil
	f.mu.Unlock()
	if code, _ := get(); code != 200 {
		t.Fatalf("after it recovered: %d", code)
	}
}

// TestServeHTTP: serve's --http answers /healthz from the running PBX, and /metrics carries the
// connection series; --max-connections-per-source reaches the PBX.
func TestServeHTTP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(t.Context())
	stderrW := &b2buatest.LogBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--sip", "127.0.0.1:0", "--db", testenv.SQLiteDSN(t), "--http", addr,
			"--max-connections-per-source", "7"}, io.Discard, stderrW)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d", code)
		}
	}()
	get := func(path string) (int, string, error) {
		res, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, "", err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return res.StatusCode, string(b), err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body, err := get("/healthz")
		if err == nil && code == 200 && body == "ok\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz: %d %q %v", code, body, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	code, body, err := get("/metrics")
	if err != nil || code != 200 || !strings.Contains(body, `pbxkit_sip_connections{transport="tcp"} 0`) ||
		!strings.Contains(body, "pbxkit_sip_accept_errors_total") {
		t.Fatalf("/metrics: %d %v\n%s", code, err, body)
	}

	// --max-connections-per-source 7: the 8th connection is refused.
	m := regexp.MustCompile(`msg="pbx listening" .*tcp=(\S+)`).FindStringSubmatch(stderrW.String())
	if m == nil {
		t.Fatalf("no listening address logged:\n%s", stderrW.String())
	}
	for range 8 {
		c, err := net.Dial("tcp", m[1])
		if errors.Is(err, syscall.ECONNRESET) {
			continue // the 8th, reset before the dial returned
		}
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	refused := `pbxkit_sip_connections_refused_total{reason="max_per_source",transport="tcp"} 1`
	for deadline := time.Now().Add(5 * time.Second); ; {
		if _, body, _ := get("/metrics"); strings.Contains(body, refused) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics has no %s", refused)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
