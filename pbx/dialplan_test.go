package pbx_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/dialplan"
	"github.com/pbxkit/pbxkit/internal/sipx"
	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// luaPBX is callPBX with a Lua dialplan: script is written to dialplan.lua in a folder of its
// own (returned), and extension 200 is registered at each callee.
func luaPBX(t *testing.T, script string, cfg pbx.Config, callees int) (*testPBX, *uaClient, []*uaClient, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "dialplan.lua")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.DialplanScript = path
	tp, caller, cs := callPBX(t, cfg, callees)
	return tp, caller, cs, dir
}

// bind adds a live binding of ext at the client.
func bind(t *testing.T, tp *testPBX, ext string, c *uaClient) {
	t.Helper()
	if _, err := tp.store.Extension(context.Background(), ext); err != nil {
		tp.addExt(t, ext, "pw"+ext)
	}
	err := tp.store.PutBinding(context.Background(), store.Binding{Extension: ext, Contact: "sip:" + ext + "@" + c.Addr(),
		Source: c.Addr(), Transport: "udp", ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
}

// dial sends an INVITE for `to` and returns it with every response up to the final one; a
// final non-2xx is acknowledged.
func dial(t *testing.T, c *uaClient, to string, headers ...string) (*sip.Request, []*sip.Response) {
	t.Helper()
	msg := c.Build(reqSpec{Method: "INVITE", From: "100", To: to, Headers: append([]string{
		"Contact: <sip:100@" + c.Addr() + ">", "Content-Type: application/sdp"}, headers...), Body: sdpBody})
	m, err := sip.ParseMessage([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	inv := m.(*sip.Request)
	c.Send(msg)
	return inv, awaitFinal(t, c, inv, 10*time.Second)
}

// awaitFinal collects the responses to inv until its final one, and ACKs a final non-2xx.
func awaitFinal(t *testing.T, c *uaClient, inv *sip.Request, within time.Duration) []*sip.Response {
	t.Helper()
	var got []*sip.Response
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		res, ok := c.RecvMsg(time.Until(deadline)).(*sip.Response)
		if !ok || res.CallID().Value() != inv.CallID().Value() {
			continue
		}
		got = append(got, res)
		if res.StatusCode >= 200 {
			if res.StatusCode >= 300 {
				ackFinal(c, inv, res)
			}
			return got
		}
	}
	t.Fatalf("no final answer to the INVITE for %s within %v (got %v)", inv.Recipient.User, within, codes(got))
	return nil
}

func ackFinal(c *uaClient, inv *sip.Request, res *sip.Response) {
	c.Send("ACK " + inv.Recipient.String() + " SIP/2.0\r\nVia: " + inv.Via().Value() + "\r\nMax-Forwards: 70\r\n" +
		"From: " + inv.From().Value() + "\r\nTo: " + res.To().Value() + "\r\nCall-ID: " + inv.CallID().Value() + "\r\n" +
		"CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
}

func codes(rs []*sip.Response) []int {
	var out []int
	for _, r := range rs {
		out = append(out, r.StatusCode)
	}
	return out
}

func final(rs []*sip.Response) *sip.Response { return rs[len(rs)-1] }

// seedFailures are the 4xx-6xx codes of the seed list (shared/seed/sip-requests-and-responses.txt).
var seedFailures = []int{400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 415, 420,
	480, 481, 482, 483, 484, 485, 486, 487, 488, 489, 491, 493, 494,
	500, 501, 502, 503, 504, 505, 600, 603, 604, 606}

func TestLuaRejectEverySeedCode(t *testing.T) {
	tp, caller, _, _ := luaPBX(t, `
function route(call)
  if call.to == "custom" then return call:reject(486, "Gone Fishing") end
  call:reject(tonumber(call.to))
end`, pbx.Config{}, 0)
	for _, code := range seedFailures {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			_, rs := dial(t, caller, strconv.Itoa(code))
			res := final(rs)
			if res.StatusCode != code || res.Reason != sipx.Reason(code) {
				t.Fatalf("got %d %q, want %d %q", res.StatusCode, res.Reason, code, sipx.Reason(code))
			}
			if tag, _ := res.To().Params.Get("tag"); tag == "" {
				t.Fatal("final answer without To tag")
			}
			switch code {
			case 405:
				if header(res, "Allow") == "" {
					t.Fatal("405 without Allow (RFC 3261 §21.4.6)")
				}
			case 415:
				if header(res, "Accept") == "" {
					t.Fatal("415 without Accept")
				}
			}
		})
	}
	_, rs := dial(t, caller, "custom")
	if res := final(rs); res.StatusCode != 486 || res.Reason != "Gone Fishing" {
		t.Fatalf("custom reason: got %d %q", res.StatusCode, res.Reason)
	}
	waitIdle(t, tp)
	deadline := time.Now().Add(5 * time.Second)
	for {
		cdrs, err := tp.store.CDRs(context.Background(), store.CDRFilter{})
		if err == nil && len(cdrs) == len(seedFailures)+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d CDRs (%v), want %d", len(cdrs), err, len(seedFailures)+1)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLuaRejectBadCodeIsScriptError(t *testing.T) {
	tp, caller, _, _ := luaPBX(t, `function route(call) call:reject(200) end`, pbx.Config{}, 0)
	_, rs := dial(t, caller, "200")
	if res := final(rs); res.StatusCode != 500 {
		t.Fatalf("got %d, want 500", res.StatusCode)
	}
	if !strings.Contains(tp.logs.String(), "dialplan.lua:1:") || !strings.Contains(tp.logs.String(), "400-699") {
		t.Fatalf("the log does not name the script line and the problem:\n%s", tp.logs.String())
	}
}

func TestLuaRedirect(t *testing.T) {
	_, caller, _, _ := luaPBX(t, `
function route(call)
  local code = tonumber(call.to)
  if code == 380 then return call:redirect(380, "sip:ivr@example.com") end
  call:redirect(code, {"sip:alice@example.com", "sip:bob@example.net;transport=tcp"})
end`, pbx.Config{}, 0)
	for _, code := range []int{300, 301, 302, 305, 380} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			_, rs := dial(t, caller, strconv.Itoa(code))
			res := final(rs)
			if res.StatusCode != code || res.Reason != sipx.Reason(code) {
				t.Fatalf("got %d %q", res.StatusCode, res.Reason)
			}
			var contacts []string
			for _, h := range res.GetHeaders("Contact") {
				contacts = append(contacts, h.Value())
			}
			want := []string{"<sip:alice@example.com>", "<sip:bob@example.net;transport=tcp>"}
			if code == 380 {
				want = []string{"<sip:ivr@example.com>"}
			}
			if strings.Join(contacts, ",") != strings.Join(want, ",") {
				t.Fatalf("Contacts %q, want %q", contacts, want)
			}
		})
	}
}

func TestLuaConnectBusyThenForward(t *testing.T) {
	tp, caller, callees, _ := luaPBX(t, `
function route(call)
  local r = call:connect(call.to, {timeout = 5})
  if r.answered then return end
  if r.status == 486 then
    return call:forward("201", {reason = "user-busy"})
  end
  call:reject(r.status)
end`, pbx.Config{}, 1)
	other := newClient(t, tp.addr)
	bind(t, tp, "201", other)

	msg, inv := invite(caller)
	caller.Send(msg)
	b := callees[0].WaitRequest(sip.INVITE)
	callees[0].Respond(b, 486, "Busy Here", "")
	callees[0].WaitRequest(sip.ACK)

	r181 := caller.WaitResponse(181)
	if r181.Reason != "Call Is Being Forwarded" || !strings.Contains(header(r181, "Diversion"), "reason=user-busy") ||
		!strings.Contains(header(r181, "Diversion"), "sip:200@") {
		t.Fatalf("181 %q with Diversion %q", r181.Reason, header(r181, "Diversion"))
	}
	f := other.WaitRequest(sip.INVITE)
	if d := header(f, "Diversion"); !strings.Contains(d, "sip:200@") || !strings.Contains(d, "user-busy") {
		t.Fatalf("the forward target sees Diversion %q", d)
	}
	other.Respond(f, 200, "OK", calleeSDP)
	ok := caller.WaitResponse(200)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	other.WaitRequest(sip.ACK)
	hangUp(t, tp, caller, other, inv, ok, 2)
	// The record names the forward's final callee, beside what the caller dialled.
	cdr := lastCDR(t, tp, inv.CallID().Value())
	if cdr.Disposition != store.Answered || cdr.Dialled != "200" || cdr.Callee != "201" ||
		len(cdr.Segments) != 1 || cdr.Segments[0].Caller != "100" || cdr.Segments[0].Callee != "201" {
		t.Fatalf("CDR %+v", cdr)
	}
}

// TestLuaRejectPassesTheCalleesAnswer: a script that rejects with the status its connect came to
// passes the callee's answer on: the record says the callee ended the call (busy, or declined).
func TestLuaRejectPassesTheCalleesAnswer(t *testing.T) {
	tp, caller, callees, _ := luaPBX(t, `
function route(call)
  local r = call:connect(call.to)
  if not r.answered then call:reject(r.status) end
end`, pbx.Config{}, 1)
	for _, tc := range []struct {
		code        int
		disposition store.Disposition
	}{{486, store.Busy}, {603, store.Declined}} {
		msg, inv := invite(caller)
		caller.Send(msg)
		b := callees[0].WaitRequest(sip.INVITE)
		callees[0].Respond(b, tc.code, "No", "")
		ackFinal(caller, inv, caller.WaitResponse(tc.code))
		waitIdle(t, tp)
		if cdr := lastCDR(t, tp, inv.CallID().Value()); cdr.Disposition != tc.disposition || cdr.HangupBy != "callee" || cdr.Status != tc.code {
			t.Fatalf("%d: CDR %+v", tc.code, cdr)
		}
	}
}

func TestLuaRingingAndProgress(t *testing.T) {
	tp, caller, _, _ := luaPBX(t, `
function route(call)
  call:ringing()
  call:progress()
  call:reject(480)
end`, pbx.Config{}, 0)
	_, rs := dial(t, caller, "200")
	var got []string
	for _, r := range rs {
		got = append(got, fmt.Sprintf("%d %s", r.StatusCode, r.Reason))
	}
	if strings.Join(got, ",") != "100 Trying,180 Ringing,183 Session Progress,480 Temporarily Unavailable" {
		t.Fatalf("caller got %q", got)
	}
	waitIdle(t, tp)
}

func TestLuaConnectFailureReachesCaller(t *testing.T) {
	// A script that connects and returns without deciding: the caller gets the attempt's status.
	tp, caller, callees, _ := luaPBX(t, `function route(call) call:connect(call.to) end`, pbx.Config{}, 1)
	msg, _ := invite(caller)
	caller.Send(msg)
	b := callees[0].WaitRequest(sip.INVITE)
	callees[0].Respond(b, 603, "Decline", "")
	if res := caller.WaitResponse(603); res.Reason != "Decline" {
		t.Fatalf("reason %q", res.Reason)
	}
	waitIdle(t, tp)
}

func TestLuaQueue(t *testing.T) {
	tp, caller, callees, _ := luaPBX(t, `
function route(call)
  local r = call:queue("support", {timeout = 2, ring_timeout = 5})
  if not r.answered then call:reject(r.status) end
end`, pbx.Config{}, 1)
	err := tp.store.CreateQueue(context.Background(), &store.Queue{Name: "support", Members: []store.QueueMember{{Extension: "200"}}})
	if err != nil {
		t.Fatal(err)
	}
	// The first caller waits at position 1 and the member rings.
	msg, inv := invite(caller)
	caller.Send(msg)
	if r := caller.WaitResponse(182); r.Reason != "Queued (position 1)" {
		t.Fatalf("182 %q", r.Reason)
	}
	b := callees[0].WaitRequest(sip.INVITE)
	callees[0].Respond(b, 180, "Ringing", "")
	caller.WaitResponse(180)

	// A second caller queues behind it.
	second := newClient(t, tp.addr)
	msg2, inv2 := invite(second)
	second.Send(msg2)
	if r := second.WaitResponse(182); r.Reason != "Queued (position 2)" {
		t.Fatalf("second caller's 182 %q", r.Reason)
	}
	if n := tp.Queues().Waiting("support"); n != 2 {
		t.Fatalf("%d callers waiting, want 2", n)
	}

	// The member answers the first caller; the second finds no free member and times out: 408.
	callees[0].Respond(b, 200, "OK", calleeSDP)
	ok := caller.WaitResponse(200)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	rs := awaitFinal(t, second, inv2, 5*time.Second)
	if res := final(rs); res.StatusCode != 408 {
		t.Fatalf("second caller got %d, want 408", res.StatusCode)
	}
	hangUp(t, tp, caller, callees[0], inv, ok, 2)
	if n := tp.Queues().Waiting("support"); n != 0 {
		t.Fatalf("%d callers still waiting", n)
	}
}

// TestLuaQueueRecordNamesTheAgent: a call to the queue's number answered by an agent is recorded
// with the number dialled and the agent who answered.
func TestLuaQueueRecordNamesTheAgent(t *testing.T) {
	tp, caller, callees, _ := luaPBX(t, `
function route(call)
  if call.to == "600" then
    local r = call:queue("support", {timeout = 5})
    if not r.answered then call:reject(r.status) end
    return
  end
  call:reject(404)
end`, pbx.Config{}, 1)
	if err := tp.store.CreateQueue(context.Background(), &store.Queue{Name: "support", Members: []store.QueueMember{{Extension: "200"}}}); err != nil {
		t.Fatal(err)
	}
	msg := caller.Build(reqSpec{Method: "INVITE", From: "100", To: "600", Headers: []string{
		"Contact: <sip:100@" + caller.Addr() + ">", "Content-Type: application/sdp"}, Body: sdpBody})
	m, _ := sip.ParseMessage([]byte(msg))
	inv := m.(*sip.Request)
	caller.Send(msg)
	b := callees[0].WaitRequest(sip.INVITE)
	callees[0].Respond(b, 200, "OK", calleeSDP)
	ok := caller.WaitResponse(200)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	callees[0].WaitRequest(sip.ACK)
	hangUp(t, tp, caller, callees[0], inv, ok, 2)
	cdr := lastCDR(t, tp, inv.CallID().Value())
	if cdr.Dialled != "600" || cdr.Callee != "200" || cdr.Disposition != store.Answered || len(cdr.Segments) != 1 || cdr.Segments[0].Callee != "200" {
		t.Fatalf("CDR %+v", cdr)
	}
}

func TestLuaScriptError(t *testing.T) {
	tp, caller, _, _ := luaPBX(t, "function route(call)\n  local x = nil\n  return x.field\nend\n", pbx.Config{}, 0)
	_, rs := dial(t, caller, "200")
	if res := final(rs); res.StatusCode != 500 {
		t.Fatalf("got %d, want 500", res.StatusCode)
	}
	if !strings.Contains(tp.logs.String(), "dialplan.lua:3:") {
		t.Fatalf("the log does not name the script line:\n%s", tp.logs.String())
	}
	waitIdle(t, tp)
}

func TestLuaEndlessLoop(t *testing.T) {
	tp, caller, _, _ := luaPBX(t, `
function route(call)
  if call.to == "1" then while true do end end
  -- pcall cannot catch the limit for long: the loop around it is stopped too
  while true do pcall(function() while true do end end) end
end`, pbx.Config{DialplanTimeout: 200 * time.Millisecond}, 0)
	for _, to := range []string{"1", "2"} {
		start := time.Now()
		_, rs := dial(t, caller, to)
		if res := final(rs); res.StatusCode != 500 {
			t.Fatalf("got %d, want 500", res.StatusCode)
		}
		// Far below the 10 s dial waits: the limit stopped the script, not a test timeout.
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("answered after %v", d)
		}
	}
	if !strings.Contains(tp.logs.String(), "ran longer than 200ms") {
		t.Fatalf("the log does not say the script ran too long:\n%s", tp.logs.String())
	}
	waitIdle(t, tp)
}

func TestLuaSandbox(t *testing.T) {
	escapes := []string{
		`io.open("/etc/passwd")`,
		`os.execute("true")`,
		`os.exit(1)`,
		`debug.getinfo(1)`,
		`load("return 1")()`,
		`loadstring("return 1")()`,
		`dofile("/etc/passwd")`,
		`loadfile("/etc/passwd")`,
		`require("os")`,
		`require("../../../etc/passwd")`,
		`require("io")`,
		`getfenv(1)`,
		`setfenv(1, {})`,
		`rawset(string, "upper", nil)`,
		`getmetatable("").__index.upper = nil`,
		`("").__index.upper = nil`,
		`local mt = getmetatable("") mt.__index = {}`,
		`getmetatable(call).__index = nil`,
		`setmetatable(call, {})`,
		`call.to = "999"`,
		`string.upper = nil`,
		`table.insert = nil`,
		`pbx.extension = function() end`,
		`setmetatable(string, nil)`,
		`setmetatable(_G, nil)`,
		`getmetatable(_G).__index.pbx = {}`,
		`string.rep("x", 1e9)`,
		`collectgarbage()`,
		`module("x")`,
		`newproxy(true)`,
		`coroutine.create(print)`,
		`package.loaded.os.exit()`,
		`_G.io.open("/etc/passwd")`,
		`string.dump(print)`,
	}
	// What a script may do: these must work, or the test could not tell a refusal from a broken
	// harness.
	allowed := []string{
		`assert(("x"):upper() == "X")`,
		`assert(string.format("%d-%s", 1, "a") == "1-a")`,
		`assert(#string.rep("ab", 3) == 6)`,
		`assert(math.floor(2.5) == 2)`,
		`assert(table.concat({"a", "b"}, ",") == "a,b")`,
		`assert(pbx.time().hour >= 0)`,
		`assert(getmetatable("") == "locked")`,
		`assert(select("#", pcall(error, "x")) == 2)`,
		`local t = setmetatable({}, {__index = function() return 1 end}); assert(t.x == 1)`,
	}
	var b strings.Builder
	b.WriteString("local attempts = {\n")
	for _, e := range append(escapes, allowed...) {
		fmt.Fprintf(&b, "  function() %s end,\n", e)
	}
	b.WriteString(`}
function route(call)
  local ok = pcall(attempts[tonumber(call.to)])
  if ok then call:reject(606) else call:reject(403) end
end`)
	tp, caller, _, _ := luaPBX(t, b.String(), pbx.Config{}, 0)
	for i, e := range escapes {
		_, rs := dial(t, caller, strconv.Itoa(i+1))
		if res := final(rs); res.StatusCode != 403 {
			t.Errorf("%s: got %d, want 403 (the attempt must fail)", e, res.StatusCode)
		}
	}
	for i, e := range allowed {
		_, rs := dial(t, caller, strconv.Itoa(len(escapes)+i+1))
		if res := final(rs); res.StatusCode != 606 {
			t.Errorf("%s: got %d, want 606 (allowed in the sandbox)", e, res.StatusCode)
		}
	}
	waitIdle(t, tp)
}

func TestLuaNothingLeaksBetweenCalls(t *testing.T) {
	_, caller, _, _ := luaPBX(t, `
function route(call)
  if call.to == "first" then
    counter = 41
    pcall(function() string.upper = nil end)
    pcall(function() math.pi = 3 end)
    pcall(function() pbx.log = nil end)
    pcall(function() setmetatable(_G, nil) end)
    return call:reject(486)
  end
  if counter == nil and string.upper ~= nil and ("x"):upper() == "X" and math.pi > 3.14 and pbx.log ~= nil then
    return call:reject(404)
  end
  call:reject(500)
end`, pbx.Config{}, 0)
	for range 3 { // more than once: the first call's state is back in the pool
		if res := final(second(dial(t, caller, "first"))); res.StatusCode != 486 {
			t.Fatalf("first call got %d", res.StatusCode)
		}
		if res := final(second(dial(t, caller, "next"))); res.StatusCode != 404 {
			t.Fatalf("a global or library change of one call reached the next: got %d, want 404", res.StatusCode)
		}
	}
}

func second[A, B any](_ A, b B) B { return b }

func TestLuaRequireModule(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "lib", "codes.lua"), `local M = {} function M.busy() return 486 end return M`)
	write(t, filepath.Join(dir, "dialplan.lua"), `
local codes = require("lib.codes")
function route(call) call:reject(codes.busy()) end`)
	tp, caller, _ := callPBX(t, pbx.Config{DialplanScript: filepath.Join(dir, "dialplan.lua")}, 0)
	if res := final(second(dial(t, caller, "1"))); res.StatusCode != 486 {
		t.Fatalf("got %d, want 486", res.StatusCode)
	}
	waitIdle(t, tp)
}

func write(t *testing.T, path, content string) {
	t.Helper()
	// Write to a temporary name and rename, as editors do, so a reload never reads half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func waitVersion(t *testing.T, tp *testPBX, v int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for tp.DialplanVersion() != v {
		if time.Now().After(deadline) {
			t.Fatalf("dialplan version %d, want %d", tp.DialplanVersion(), v)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLuaReload(t *testing.T) {
	tp, caller, callees, dir := luaPBX(t, `
function route(call)
  if call.to == "200" then
    local r = call:connect("200")
    return call:reject(r.status == 480 and 486 or 500)
  end
  call:reject(486)
end`, pbx.Config{}, 1)
	path := filepath.Join(dir, "dialplan.lua")

	// A call in progress under version 1.
	msg, inv := invite(caller)
	caller.Send(msg)
	b := callees[0].WaitRequest(sip.INVITE)

	// A broken edit: reported, and version 1 keeps running.
	write(t, path, "function route(call) call:reject(603) end end end")
	if err := tp.ReloadDialplan(); err == nil || !strings.Contains(err.Error(), "dialplan.lua") {
		t.Fatalf("reload of a broken script: %v", err)
	}
	if v := tp.DialplanVersion(); v != 1 {
		t.Fatalf("version %d after a broken reload, want 1", v)
	}
	other := newClient(t, tp.addr)
	if res := final(second(dial(t, other, "300"))); res.StatusCode != 486 {
		t.Fatalf("after a broken reload: got %d, want 486 from version 1", res.StatusCode)
	}
	// A script without route is refused too.
	write(t, path, "function rout(call) end")
	if err := tp.ReloadDialplan(); err == nil || !strings.Contains(err.Error(), "route") {
		t.Fatalf("reload of a script without route: %v", err)
	}

	// A good edit is picked up by the file watcher alone.
	write(t, path, "function route(call) call:reject(603) end")
	waitVersion(t, tp, 2)
	if res := final(second(dial(t, other, "300"))); res.StatusCode != 603 {
		t.Fatalf("after reload: got %d, want 603 from version 2", res.StatusCode)
	}

	// The reloads are counted by result.
	mfs, err := tp.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() == "pbxkit_dialplan_reloads_total" {
			for _, m := range mf.GetMetric() {
				counts[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	if counts["ok"] < 1 || counts["error"] < 2 {
		t.Fatalf("reload metric %v, want at least 1 ok and 2 errors", counts)
	}

	// The call that started under version 1 finishes under version 1.
	callees[0].Respond(b, 480, "Temporarily Unavailable", "")
	rs := awaitFinal(t, caller, inv, 5*time.Second)
	if res := final(rs); res.StatusCode != 486 {
		t.Fatalf("the call in progress got %d, want 486 (version 1)", res.StatusCode)
	}
	waitIdle(t, tp)
}

func TestLuaParallelCalls(t *testing.T) {
	const n = 200
	tp, caller, _, _ := luaPBX(t, `
function route(call)
  local ext = pbx.extension("200")
  local n = call:header("X-N")
  call:set("n", n)
  local sum = 0
  for i = 1, 1000 do sum = sum + i end
  call:reject(486, "Busy " .. n .. " " .. tostring(ext ~= nil) .. " " .. sum)
end`, pbx.Config{}, 0)
	var invs []*sip.Request
	msgs := map[string]string{} // by Call-ID, for retransmission
	for i := range n {
		msg := caller.Build(reqSpec{Method: "INVITE", From: "100", To: "200", Headers: []string{
			"Contact: <sip:100@" + caller.Addr() + ">", "X-N: " + strconv.Itoa(i)}})
		m, _ := sip.ParseMessage([]byte(msg))
		invs = append(invs, m.(*sip.Request))
		msgs[m.(*sip.Request).CallID().Value()] = msg
		caller.Send(msg)
	}
	want := map[string]string{}
	for i, inv := range invs {
		want[inv.CallID().Value()] = fmt.Sprintf("Busy %d true 500500", i)
	}
	got := 0
	deadline := time.Now().Add(30 * time.Second)
	resend := time.Now().Add(time.Second)
	for got < n && time.Now().Before(deadline) {
		if time.Now().After(resend) {
			// Like a phone's Timer A (RFC 3261 §17.1.1.2): a burst of 200 datagrams may overflow
			// a socket buffer, and UDP requests are retransmitted until answered.
			for id := range want {
				caller.Send(msgs[id])
			}
			resend = time.Now().Add(time.Second)
		}
		res, ok := caller.RecvMsg(100 * time.Millisecond).(*sip.Response)
		if !ok || res.StatusCode < 200 {
			continue
		}
		w, known := want[res.CallID().Value()]
		if !known {
			continue // a retransmission of an answer already counted
		}
		if res.StatusCode != 486 || res.Reason != w {
			t.Fatalf("got %d %q, want 486 %q", res.StatusCode, res.Reason, w)
		}
		delete(want, res.CallID().Value())
		for _, inv := range invs {
			if inv.CallID().Value() == res.CallID().Value() {
				ackFinal(caller, inv, res)
			}
		}
		got++
	}
	if got != n {
		for id := range want { // what the PBX did with the calls left unanswered, for the record
			t.Logf("unanswered %s:\n%s", id, grep(tp.logs.String(), id))
		}
		t.Fatalf("%d of %d calls answered", got, n)
	}
	waitIdle(t, tp)
}

func TestGoHandlerBeforeLua(t *testing.T) {
	// A Go pre-check decides some calls; the script sees only the rest.
	var seen sync.Map
	pre := dialplan.HandlerFunc(func(ctx context.Context, c *b2bua.Call) error {
		seen.Store(c.Callee(), true)
		if c.Callee() == "666" {
			return c.Reject(603, "")
		}
		return nil
	})
	_, caller, _, _ := luaPBX(t, `function route(call) call:reject(404) end`, pbx.Config{Dialplan: pre}, 0)
	if res := final(second(dial(t, caller, "666"))); res.StatusCode != 603 {
		t.Fatalf("blacklisted: got %d", res.StatusCode)
	}
	if res := final(second(dial(t, caller, "123"))); res.StatusCode != 404 {
		t.Fatalf("passed on to Lua: got %d", res.StatusCode)
	}
	if _, ok := seen.Load("123"); !ok {
		t.Fatal("the Go handler did not see the call")
	}
}

func TestLuaOnHangup(t *testing.T) {
	tp, caller, _, _ := luaPBX(t, `
function route(call)
  call:set("tag", "vip")
  call:reject(486)
end
function on_hangup(call, cdr)
  pbx.log("info", "hangup seen", "tag", call:get("tag"), "status", cdr.status, "disposition", cdr.disposition)
end`, pbx.Config{}, 0)
	dial(t, caller, "200")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(tp.logs.String(), `tag=vip status=486 disposition=busy source=script`) {
		if time.Now().After(deadline) {
			t.Fatalf("on_hangup did not run:\n%s", tp.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLuaOnHangupSeesSegments: on_hangup's record has what was dialled, who answered and the
// call's segments, and call.id is the caller's Call-ID.
func TestLuaOnHangupSeesSegments(t *testing.T) {
	tp, caller, callees, _ := luaPBX(t, `
function route(call) call:connect(call.to) end
function on_hangup(call, cdr)
  local s = cdr.segments[1]
  pbx.log("info", "hangup seen", "id", call.id, "dialled", cdr.dialled, "segments", #cdr.segments,
    "pair", s.caller .. ">" .. s.callee, "why", s.reason, "ordered", tostring(s["end"] >= s.start))
end`, pbx.Config{}, 1)
	inv, ok, _ := answeredCall(t, tp, caller, callees[0])
	hangUp(t, tp, caller, callees[0], inv, ok, 2)
	want := `id=` + inv.CallID().Value() + ` dialled=200 segments=1 pair=100>200 why="hangup by caller" ordered=true`
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(tp.logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("on_hangup did not log %q:\n%s", want, tp.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLuaBrokenScriptRefusedAtStart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dialplan.lua")
	write(t, path, "function route(call")
	_, err := pbx.New(pbx.Config{SIP: "127.0.0.1:0", Database: "sqlite::memory:", DialplanScript: path})
	if err == nil || !strings.Contains(err.Error(), "dialplan.lua") {
		t.Fatalf("New with a broken script: %v", err)
	}
}

func TestLuaQueueCallerHangsUp(t *testing.T) {
	// A caller that gives up while waiting leaves the queue; nothing of the call stays behind.
	tp, caller, _, _ := luaPBX(t, `
function route(call)
  local r = call:queue("support", {timeout = 30})
  if not r.answered then call:reject(r.status) end
end`, pbx.Config{}, 0)
	err := tp.store.CreateQueue(context.Background(), &store.Queue{Name: "support", Members: []store.QueueMember{{Extension: "200"}}})
	if err != nil {
		t.Fatal(err)
	}
	msg, inv := invite(caller)
	caller.Send(msg)
	caller.WaitResponse(182)
	if n := tp.Queues().Waiting("support"); n != 1 {
		t.Fatalf("%d callers waiting, want 1", n)
	}
	cancel := cancelOf(inv)
	caller.Send(cancel)
	r487 := caller.WaitResponse(487)
	ackFinal(caller, inv, r487)
	waitIdle(t, tp)
	deadline := time.Now().Add(5 * time.Second)
	for tp.Queues().Waiting("support") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the caller is still in the queue")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if cdr := lastCDR(t, tp, inv.CallID().Value()); cdr.Disposition != store.Cancelled || cdr.HangupBy != "caller" {
		t.Fatalf("CDR %+v", cdr)
	}
}
