package admin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/internal/admin"
	"github.com/pbxkit/pbxkit/pbx"
)

// stream is a client of /api/events.
type stream struct {
	res *http.Response
	rd  *bufio.Reader
}

type sseEvent struct {
	name string
	data map[string]any
}

// openStream connects to the event stream and waits for its "ready" event. The request ends
// with ctx.
func (e *env) openStream(t *testing.T, ctx context.Context) *stream {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	s := &stream{res: res, rd: bufio.NewReader(res.Body)}
	if ev, err := s.next(); err != nil || ev.name != "ready" {
		t.Fatalf("first event %+v, %v; want ready", ev, err)
	}
	return s
}

// next reads the next event, skipping comments.
func (s *stream) next() (sseEvent, error) {
	var ev sseEvent
	for {
		line, err := s.rd.ReadString('\n')
		if err != nil {
			return ev, err
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && ev.name != "":
			return ev, nil
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.data); err != nil {
				return ev, err
			}
		}
	}
}

// TestEventStreamCall: a call's events arrive on the stream in order, with the call's identity,
// and the stream ends when the PBX shuts down.
func TestEventStreamCall(t *testing.T) {
	e := start(t, pbx.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := e.openStream(t, ctx)
	caller, callee := e.phones(t)
	inv, ok, _ := b2buatest.AnsweredCall(t, caller, callee)
	b2buatest.HangUp(t, caller, callee, inv, ok, 2)
	for _, want := range []struct {
		kind   string
		status float64
	}{{"call.new", 0}, {"call.leg_ringing", 0}, {"call.ringing", 180}, {"call.answered", 200}, {"call.ended", 200}} {
		ev, err := s.next()
		if err != nil {
			t.Fatal(err)
		}
		status, _ := ev.data["status"].(float64)
		if ev.name != want.kind || ev.data["kind"] != want.kind || ev.data["call_id"] != inv.CallID().Value() ||
			ev.data["caller"] != "100" || ev.data["callee"] != "200" || status != want.status {
			t.Fatalf("got %s %v, want %s", ev.name, ev.data, want.kind)
		}
		if want.kind == "call.leg_ringing" && ev.data["leg"] != "200" {
			t.Fatalf("leg ringing: %v", ev.data)
		}
		if want.kind == "call.ended" && ev.data["hangup_by"] != "caller" {
			t.Fatalf("ended: %v", ev.data)
		}
	}
	// Shutdown closes the PBX's subscriptions: the stream ends.
	if err := e.pbx.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.next(); err != io.EOF {
		t.Fatalf("after shutdown: %v, want the stream to end", err)
	}
}

// TestEventStreamClose: Close ends open streams (the HTTP server's shutdown calls it), and a
// registration shows on the stream.
func TestEventStreamClose(t *testing.T) {
	e := start(t, pbx.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := e.openStream(t, ctx)
	e.adm.Close()
	if _, err := s.next(); err != io.EOF {
		t.Fatalf("after Close: %v, want the stream to end", err)
	}
}

// TestTokenStored: without a configured token, the first server generates one and keeps its
// hash only; the next server (a restart) takes the same token and shows nothing.
func TestTokenStored(t *testing.T) {
	e := start(t, pbx.Config{})
	ctx := context.Background()
	a, err := admin.New(ctx, admin.Config{PBX: e.pbx})
	if err != nil {
		t.Fatal(err)
	}
	token := a.NewToken()
	if len(token) < 40 {
		t.Fatalf("generated token %q", token)
	}
	hash, err := e.store.APITokenHash(ctx, "admin")
	if err != nil || hash == "" || strings.Contains(hash, token) {
		t.Fatalf("stored %q, %v", hash, err)
	}
	b, err := admin.New(ctx, admin.Config{PBX: e.pbx})
	if err != nil || b.NewToken() != "" {
		t.Fatalf("restart: new token %q, %v", b.NewToken(), err)
	}
	mux := http.NewServeMux()
	b.Register(mux)
	for _, tc := range []struct {
		auth string
		want int
	}{{"Bearer " + token, 200}, {"Bearer " + testToken, 401}} {
		req, _ := http.NewRequest("GET", "/api/calls", nil)
		req.Header.Set("Authorization", tc.auth)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s: %d, want %d", tc.auth[:12], rec.Code, tc.want)
		}
	}
	if _, err := admin.New(ctx, admin.Config{PBX: e.pbx, Token: "short"}); err == nil {
		t.Fatal("a short configured token was taken")
	}
}
