package main

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/internal/testenv"
	"github.com/pbxkit/pbxkit/store"
)

// TestCLINodes: officepbx nodes lists every node row, live or stale by its last heartbeat.
func TestCLINodes(t *testing.T) {
	dsn := testenv.SQLiteDSN(t)
	ctx := context.Background()
	s, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if code, out, _ := officepbx(t, "nodes", "--db", dsn); code != 0 || out != "no nodes\n" {
		t.Fatalf("no nodes: %d %q", code, out)
	}
	if err := s.Heartbeat(ctx, store.Node{ID: "pbx1", SIPAddr: "10.0.0.1:5060", HTTPAddr: "10.0.0.1:8080", Version: "v1", StartedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"sip:100@10.1.0.1", "sip:101@10.1.0.2"} {
		e := &store.Extension{Number: c[4:7], Enabled: true}
		if err := e.SetPassword("pbxkit", "pw-"+e.Number); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateExtension(ctx, e); err != nil {
			t.Fatal(err)
		}
		if err := s.PutBinding(ctx, store.Binding{Extension: c[4:7], Contact: c, Source: c[8:] + ":5060", Transport: "udp",
			ExpiresAt: time.Now().Add(time.Hour), NodeID: "pbx1"}); err != nil {
			t.Fatal(err)
		}
	}
	old := store.Node{ID: "pbx2", SIPAddr: "10.0.0.2:5060", StartedAt: time.Now().Add(-time.Hour)}
	if err := s.Heartbeat(ctx, old); err != nil {
		t.Fatal(err)
	}
	// pbx2 beats no more: after 1.1 s it has missed 3 beats of 300 ms; pbx1 has just beaten.
	time.Sleep(1100 * time.Millisecond)
	if err := s.Heartbeat(ctx, store.Node{ID: "pbx1", SIPAddr: "10.0.0.1:5060", HTTPAddr: "10.0.0.1:8080", Version: "v1", StartedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	code, out, errs := officepbx(t, "nodes", "--db", dsn, "--heartbeat", "300ms")
	if code != 0 {
		t.Fatalf("nodes: %d %s", code, errs)
	}
	for _, want := range []string{`(?m)^NODE\s+STATE\s+SIP\s+HTTP\s+REGISTRATIONS`, `(?m)^pbx1\s+live\s+10\.0\.0\.1:5060\s+10\.0\.0\.1:8080\s+2\s+v1\s`, `(?m)^pbx2\s+stale\s+10\.0\.0\.2:5060\s+-\s+0\s+-\s`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("output does not match %s:\n%s", want, out)
		}
	}
}
