package admin_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// TestRegistrations: a live binding is listed, an expired one is not.
func TestRegistrations(t *testing.T) {
	e := start(t, pbx.Config{})
	e.addExt(t, "100")
	e.addExt(t, "101")
	ctx := context.Background()
	for _, b := range []store.Binding{
		{Extension: "100", Contact: "sip:100@192.0.2.1:5060", Source: "192.0.2.1:5060", Transport: "udp", UserAgent: "desk phone", ExpiresAt: time.Now().Add(time.Hour)},
		{Extension: "101", Contact: "sip:101@192.0.2.2:5060", Source: "192.0.2.2:5060", Transport: "tcp", ExpiresAt: time.Now().Add(-time.Minute)},
	} {
		if err := e.store.PutBinding(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	code, body := e.do(t, "GET", "/api/registrations", "")
	var regs []struct{ Extension, Contact, Source, Transport, UserAgent string }
	decode(t, body, &regs)
	if code != 200 || len(regs) != 1 || regs[0].Extension != "100" || regs[0].Source != "192.0.2.1:5060" || !strings.Contains(body, `"user_agent": "desk phone"`) {
		t.Fatalf("%d %s", code, body)
	}
}

// TestCallsAndHangup: an answered call is listed; DELETE hangs it up (BYE to both phones) and it
// leaves the list; an unknown id is 404.
func TestCallsAndHangup(t *testing.T) {
	e := start(t, pbx.Config{})
	caller, callee := e.phones(t)
	inv, _, _ := b2buatest.AnsweredCall(t, caller, callee)
	id := inv.CallID().Value()
	code, body := e.do(t, "GET", "/api/calls", "")
	var calls []struct{ ID, Caller, Callee, State string }
	decode(t, body, &calls)
	if code != 200 || len(calls) != 1 || calls[0].ID != id || calls[0].Caller != "100" || calls[0].Callee != "200" || calls[0].State != "answered" {
		t.Fatalf("calls: %d %s", code, body)
	}
	if code, body := e.do(t, "DELETE", "/api/calls/"+url.PathEscape(id), ""); code != 204 {
		t.Fatalf("hang up: %d %s", code, body)
	}
	byeBoth(t, caller, callee)
	e.waitCalls(t, 0)
	if code, body := e.do(t, "GET", "/api/calls", ""); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Fatalf("after hang-up: %d %s", code, body)
	}
	if code, body := e.do(t, "DELETE", "/api/calls/"+url.PathEscape(id), ""); code != 404 {
		t.Fatalf("hang up again: %d %s", code, body)
	}
}

// TestHangupRinging: hanging up a call that still rings cancels the callee; the caller gets 487.
func TestHangupRinging(t *testing.T) {
	e := start(t, pbx.Config{})
	caller, callee := e.phones(t)
	msg, inv := caller.Invite("100", "200", nil)
	caller.Send(msg)
	bInv := callee.WaitRequest(sip.INVITE)
	callee.Respond(bInv, 180, "Ringing", "")
	caller.WaitResponse(180)
	if code, body := e.do(t, "DELETE", "/api/calls/"+url.PathEscape(inv.CallID().Value()), ""); code != 204 {
		t.Fatalf("hang up: %d %s", code, body)
	}
	callee.AcceptCancel(bInv)
	caller.WaitResponse(487)
	e.waitCalls(t, 0)
}

// TestCDRSearch: records filter by time, extension and disposition and page newest first; bad
// parameters are 400.
func TestCDRSearch(t *testing.T) {
	e := start(t, pbx.Config{})
	ctx := context.Background()
	day := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for i, c := range []struct {
		caller, callee string
		disp           store.Disposition
		status         int
	}{
		{"100", "200", store.Answered, 200}, {"100", "201", store.Busy, 486}, {"101", "200", store.NoAnswer, 480},
		{"102", "200", store.Answered, 200}, {"100", "200", store.Cancelled, 487},
	} {
		start := day.Add(time.Duration(i) * time.Hour)
		r := &store.CDR{CallID: "cdr-" + string(rune('a'+i)), Caller: c.caller, Dialled: c.callee, Callee: c.callee,
			StartAt: start, EndAt: start.Add(time.Minute), Disposition: c.disp, Status: c.status, HangupBy: "caller"}
		if c.disp == store.Answered {
			a := start.Add(5 * time.Second)
			r.AnswerAt = &a
		}
		if err := e.store.WriteCDR(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	type page struct {
		Page    int
		HasMore bool `json:"has_more"`
		Items   []struct {
			CallID      string `json:"call_id"`
			Disposition string
		}
	}
	ids := func(p page) string {
		var out []string
		for _, it := range p.Items {
			out = append(out, it.CallID)
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct {
		query, want string
		more        bool
	}{
		{"", "cdr-e,cdr-d,cdr-c,cdr-b,cdr-a", false},
		{"?ext=100", "cdr-e,cdr-b,cdr-a", false},
		{"?disposition=answered", "cdr-d,cdr-a", false},
		{"?ext=200&disposition=answered", "cdr-d,cdr-a", false},
		{"?from=2026-12-01T10:00:00Z&to=2026-12-01T12:00:00Z", "cdr-c,cdr-b", false},
		{"?from=2026-12-02", "", false},
		{"?per_page=2", "cdr-e,cdr-d", true},
		{"?per_page=2&page=2", "cdr-c,cdr-b", true},
		{"?per_page=2&page=3", "cdr-a", false},
	} {
		code, body := e.do(t, "GET", "/api/cdrs"+tc.query, "")
		var p page
		decode(t, body, &p)
		if code != 200 || ids(p) != tc.want || p.HasMore != tc.more {
			t.Errorf("%s: %d got %q more=%v, want %q more=%v", tc.query, code, ids(p), p.HasMore, tc.want, tc.more)
		}
	}
	for _, q := range []string{"?from=yesterday", "?to=2026-13-01", "?page=0", "?page=x", "?per_page=1000", "?disposition=lost"} {
		if code, body := e.do(t, "GET", "/api/cdrs"+q, ""); code != 400 {
			t.Errorf("%s: %d %s, want 400", q, code, body)
		} else {
			errorOf(t, body)
		}
	}
}

// TestQueuesAndAgents: queues are listed with their agents; pause and unpause change the agent
// and are published as events; unknown agents are 404.
func TestQueuesAndAgents(t *testing.T) {
	e := start(t, pbx.Config{})
	e.addExt(t, "100")
	e.addExt(t, "101")
	q := &store.Queue{Name: "support", Strategy: store.StrategyRingAll, Members: []store.QueueMember{{Extension: "100"}, {Extension: "101", Penalty: 1}}}
	if err := e.store.CreateQueue(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	sub := e.pbx.Subscribe(8)
	defer sub.Close()
	code, body := e.do(t, "POST", "/api/queues/support/agents/100/pause", `{"reason":"lunch"}`)
	if code != 200 || !strings.Contains(body, `"paused": true`) {
		t.Fatalf("pause: %d %s", code, body)
	}
	select {
	case ev := <-sub.C:
		if ev.Kind != pbx.AgentPaused || ev.Queue != "support" || ev.Extension != "100" || ev.Reason != "lunch" {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no agent event")
	}
	code, body = e.do(t, "GET", "/api/queues", "")
	var qs []struct {
		Name, Strategy string
		Agents         []struct {
			Extension   string
			Paused      bool
			PauseReason string `json:"pause_reason"`
		}
	}
	decode(t, body, &qs)
	if code != 200 || len(qs) != 1 || len(qs[0].Agents) != 2 || !qs[0].Agents[0].Paused || qs[0].Agents[0].PauseReason != "lunch" || qs[0].Agents[1].Paused {
		t.Fatalf("queues: %d %s", code, body)
	}
	if code, body := e.do(t, "POST", "/api/queues/support/agents/100/unpause", ""); code != 200 || !strings.Contains(body, `"paused": false`) {
		t.Fatalf("unpause: %d %s", code, body)
	}
	for _, tc := range []struct {
		path, body string
		want       int
	}{
		{"/api/queues/support/agents/999/pause", "", 404},
		{"/api/queues/nosuch/agents/100/pause", "", 404},
		{"/api/queues/support/agents/100/pause", `{"reason":"` + strings.Repeat("r", 100) + `"}`, 422},
		{"/api/queues/support/agents/100/pause", `{"reason":`, 400},
		{"/api/queues/support/agents/100/pause", `{"why":"x"}`, 400},
		{"/api/queues/support/agents/100/unpause", `{"reason":"x"}`, 422},
	} {
		if code, body := e.do(t, "POST", tc.path, tc.body); code != tc.want {
			t.Errorf("%s %s: %d %s, want %d", tc.path, tc.body, code, body, tc.want)
		} else {
			errorOf(t, body)
		}
	}
}

// TestDialplanReload: without a script 409; a good edit reloads (the version goes up); a broken
// one is 422 and the running version stays.
func TestDialplanReload(t *testing.T) {
	e := start(t, pbx.Config{})
	if code, body := e.do(t, "POST", "/api/dialplan/reload", ""); code != 409 {
		t.Fatalf("without a script: %d %s", code, body)
	}
	script := filepath.Join(t.TempDir(), "dialplan.lua")
	write := func(s string) {
		if err := os.WriteFile(script, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("function route(call) return call:reject(404) end\n")
	e2 := start(t, pbx.Config{DialplanScript: script})
	before := e2.pbx.DialplanVersion()
	write("function route(call) return call:reject(403) end\n")
	code, body := e2.do(t, "POST", "/api/dialplan/reload", "")
	if code != 200 || e2.pbx.DialplanVersion() <= before {
		t.Fatalf("reload: %d %s (version %d, before %d)", code, body, e2.pbx.DialplanVersion(), before)
	}
	now := e2.pbx.DialplanVersion()
	write("function route(call) return call:reject(\n")
	code, body = e2.do(t, "POST", "/api/dialplan/reload", "")
	if code != 422 || e2.pbx.DialplanVersion() != now {
		t.Fatalf("broken script: %d %s (version %d, was %d)", code, body, e2.pbx.DialplanVersion(), now)
	}
	errorOf(t, body)
}
