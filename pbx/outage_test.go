package pbx_test

import (
	"context"
	"log/slog"
	"net/netip"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/internal/testenv"
	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// TestDatabaseOutage: Postgres is cut (through a proxy) while calls go on. Phones that were
// registered keep calling each other (routing uses the store's last answers), every call's
// record waits in the spool, and once the database is back every call has exactly one record.
func TestDatabaseOutage(t *testing.T) {
	u, _ := url.Parse(testenv.PostgresDSN(t))
	proxy := testenv.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	ctx := context.Background()
	s, err := store.Open(ctx, u.String(), store.WithOpTimeout(time.Second), store.WithCacheTTL(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	logs := &logBuffer{}
	p, err := pbx.New(pbx.Config{SIP: "127.0.0.1:0", Domain: "pbx.test", Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		RecordSpool: filepath.Join(t.TempDir(), "records.spool")},
		pbx.WithStore(s), pbx.WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
	tp := &testPBX{PBX: p, logs: logs, addr: p.UDPAddr()}

	e := &store.Extension{Number: "200", Name: "Ext 200", Enabled: true}
	if err := e.SetPassword("pbx.test", "pw200"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateExtension(ctx, e); err != nil {
		t.Fatal(err)
	}
	callee, caller := newClient(t, tp.addr), newClient(t, tp.addr)
	if err := s.PutBinding(ctx, store.Binding{Extension: "200", Contact: "sip:200@" + callee.Addr(), Source: callee.Addr(),
		Transport: "udp", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	var callIDs []string
	call := func() {
		t.Helper()
		inv, ok, _ := answeredCall(t, tp, caller, callee)
		hangUp(t, tp, caller, callee, inv, ok, 2)
		callIDs = append(callIDs, inv.CallID().Value())
	}
	call() // the store has looked the callee up

	proxy.SetDown(true)
	time.Sleep(300 * time.Millisecond) // past the cache's time to live
	for range 3 {
		call()
	}
	msg, inv := invite(caller)
	caller.Send(msg)
	b := callee.WaitRequest(sip.INVITE)
	callee.Respond(b, 486, "Busy Here", "")
	ackFinal(caller, inv, caller.WaitResponse(486))
	callIDs = append(callIDs, inv.CallID().Value())
	waitIdle(t, tp)

	proxy.SetDown(false)
	deadline := time.Now().Add(20 * time.Second)
	for _, id := range callIDs {
		for {
			cdrs, err := s.CDRs(ctx, store.CDRFilter{CallID: id})
			if err == nil && len(cdrs) == 1 {
				break
			}
			if err == nil && len(cdrs) > 1 || time.Now().After(deadline) {
				t.Fatalf("call %s: %d records (%v), want one", id, len(cdrs), err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if all, err := s.CDRs(ctx, store.CDRFilter{}); err != nil || len(all) != len(callIDs) {
		t.Fatalf("%d records for %d calls (%v)", len(all), len(callIDs), err)
	}
}
