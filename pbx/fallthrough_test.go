package pbx_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/dialplan"
	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// A dialplan that leaves a call alone hands it to default routing; one that tried something
// keeps what came of it.

// TestGoDialplanFallsThrough: a Go handler that decides nothing leaves the call to default
// routing, which follows 101's forward; one that tried a Connect keeps its status.
func TestGoDialplanFallsThrough(t *testing.T) {
	var dir atomic.Value // the PBX's Directory, once it runs (set before Run, it needs no atomic)
	route := dialplan.HandlerFunc(func(ctx context.Context, c *b2bua.Call) error {
		ext, err := dir.Load().(dialplan.Directory).Extension(ctx, c.Callee())
		if err != nil {
			return err
		}
		if ext != nil && ext.ForwardAlways != "" {
			if err := c.SetHeader("X-Forward-Always", ext.ForwardAlways); err != nil {
				return err
			}
		}
		if c.Callee() == "103" {
			_, err = c.Connect(ctx, []string{"103"}, b2bua.ConnectOptions{})
		}
		return err // undecided
	})
	o := newOffice(t, "sqlite::memory:", pbx.Config{Dialplan: route}, []string{"101", "102", "103"})
	dir.Store(o.tp.Directory())
	o.set(t, "101", store.ExtensionPatch{ForwardAlways: ptr("102")})
	o.set(t, "103", store.ExtensionPatch{ForwardBusy: ptr("102")})
	inv := o.call("101")
	b := o.ring("102")
	if header(b, "X-Forward-Always") != "102" || !strings.Contains(header(b, "Diversion"), "<sip:101@") {
		t.Fatalf("the handler's header %q, Diversion %q", header(b, "X-Forward-Always"), header(b, "Diversion"))
	}
	if rs := o.answer(t, "102", b, inv); count(rs, 181) != 1 {
		t.Fatalf("caller got %v", codes(rs))
	}

	// The handler's own Connect came to 486: that stands, 103's forward on busy is not applied.
	inv = o.call("103")
	o.phones["103"].Respond(o.ring("103"), 486, "Busy Here", "")
	if rs := awaitFinal(t, o.caller, inv, 5*time.Second); final(rs).StatusCode != 486 || count(rs, 181) != 0 {
		t.Fatalf("caller got %v, want the handler's 486", codes(rs))
	}
	o.quiet(t, nil, "102")
}

// TestLuaDialplanFallsThrough: a script whose route returns without deciding leaves the call to
// default routing; call:forward follows the target extension's own forwards.
func TestLuaDialplanFallsThrough(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dialplan.lua")
	script := `
function route(call)
  call:set_header("X-Script", "seen")
  if call.to == "110" then return call:forward("102", {reason = "time-of-day"}) end
  if call.to == "111" then
    local r = call:forward("111") -- where the call is already: a loop, nothing rings
    return call:reject(r.status == 482 and 482 or 500)
  end
  -- anything else: undecided
end`
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	o := newOffice(t, "sqlite::memory:", pbx.Config{DialplanScript: path}, []string{"101", "102", "103"}, "110")
	o.set(t, "101", store.ExtensionPatch{ForwardBusy: ptr("103")})
	o.set(t, "102", store.ExtensionPatch{ForwardAlways: ptr("103")})

	// Undecided: default routing rings 101, busy, forwards to 103.
	inv := o.call("101")
	first := o.ring("101")
	if header(first, "X-Script") != "seen" {
		t.Fatalf("the script did not run first: X-Script %q", header(first, "X-Script"))
	}
	o.phones["101"].Respond(first, 486, "Busy Here", "")
	b := o.ring("103")
	if !strings.Contains(header(b, "Diversion"), "reason=user-busy") {
		t.Fatalf("Diversion %q", header(b, "Diversion"))
	}
	o.answer(t, "103", b, inv)

	// call:forward("102"): 102 forwards always to 103, so the call ends up there after two
	// forwards, the script's reason first.
	inv = o.call("110")
	b = o.ring("103")
	h := o.host
	wantForwarded(t, b,
		"<sip:102@"+h+">;reason=unconditional;counter=1 | <sip:110@"+h+">;reason=time-of-day;counter=1",
		"<sip:110@"+h+"?Reason=SIP%3Bcause%3D404>;index=1,<sip:102@"+h+";cause=404?Reason=SIP%3Bcause%3D302>;index=1.1;mp=1,<sip:103@"+h+";cause=302>;index=1.1.1;mp=1.1")
	if rs := o.answer(t, "103", b, inv); count(rs, 181) != 2 {
		t.Fatalf("caller got %v, want two 181s", codes(rs))
	}
	o.quiet(t, nil, "102")

	rs := awaitFinal(t, o.caller, o.call("111"), 5*time.Second)
	if final(rs).StatusCode != 482 || count(rs, 181) != 0 {
		t.Fatalf("call:forward to where the call is: got %v, want 482", codes(rs))
	}
}
