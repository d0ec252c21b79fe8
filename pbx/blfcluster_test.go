package pbx_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/pbx"
)

// until takes the watcher's NOTIFYs until one shows the dialogs' states ("direction:state,...")
// of node's dialogs only (their ids start with the node's), or fails after 10 s.
func (w *watcher) until(node, states string) notice {
	w.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := w.next(200)
		if n.states() == states && n.from(node) {
			return n
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("no NOTIFY with %q of %s within 10s; last %q\n%s", states, node, n.states(), n.req.Body())
		}
	}
}

// from reports whether every dialog of the document is one of node's.
func (n notice) from(node string) bool {
	for _, d := range n.doc.Dialogs {
		if !strings.HasPrefix(d.ID, node+"-") {
			return false
		}
	}
	return true
}

// TestBLFAcrossNodes: a phone watching 101 through node B sees 101's call on node A ring, be
// answered and end; a phone that starts watching while the call is up sees it too.
func TestBLFAcrossNodes(t *testing.T) {
	eachShared(t, func(t *testing.T, dsn string) {
		a, b := twoNodes(t, dsn, pbx.Config{})
		phone := newClient(t, a.addr)
		bind(t, a, "101", phone)
		b.addExt(t, "201", "pw201")
		w := subscribe(t, newClient(t, b.addr), "101", "600")
		w.expect("active;expires=", "")

		caller := newClient(t, a.addr)
		msg, inv := caller.Invite("100", "101", nil)
		caller.Send(msg)
		bInv := phone.WaitRequest(sip.INVITE)
		phone.Respond(bInv, 180, "Ringing", "")
		caller.WaitResponse(180)
		ringing := w.until("node-a", "recipient:early")
		if got := ringing.doc.Dialogs[0].Remote; got != "sip:100@pbx.test" {
			t.Errorf("the ringing dialog's remote identity %q, want the caller", got)
		}
		phone.Respond(bInv, 200, "OK", calleeSDP)
		ok := caller.WaitResponse(200)
		phone.WaitRequest(sip.ACK)
		caller.Send(caller.InDialog("ACK", inv, ok, 1))
		w.until("node-a", "recipient:confirmed")

		late := subscribe(t, newClient(t, b.addr), "101", "600")
		late.until("node-a", "recipient:confirmed")

		hangUp(t, a, caller, phone, inv, ok, 2)
		w.until("node-a", "recipient:terminated")
		late.until("node-a", "recipient:terminated")
		waitIdle(t, b)
		if err := a.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestBLFCallThroughRegisteringNode: a phone registered straight to node B (no balancer) is called
// from node A, which sends the call through B. B's relaying call is not shown as a second dialog:
// a watcher through B sees the call once, as A shares it.
func TestBLFCallThroughRegisteringNode(t *testing.T) {
	eachShared(t, func(t *testing.T, dsn string) {
		a, b := twoNodes(t, dsn, pbx.Config{})
		b.addExt(t, "202", "pw202")
		b.addExt(t, "201", "pw201")
		ph := b2buatest.NewTCPPhone(t, b.addr.String())
		reg := registerSpec("202", "tcp-reg", 1, "Contact: <"+ph.Contact("202")+">")
		if res := ph.Do(ph.Build(reg)); res.StatusCode != 200 {
			t.Fatalf("REGISTER over TCP to node B: %d", res.StatusCode)
		}
		w := subscribe(t, newClient(t, b.addr), "202", "600")
		w.expect("active;expires=", "")

		caller := newClient(t, a.addr)
		msg, inv := caller.Invite("100", "202", nil)
		caller.Send(msg)
		ring := ph.WaitRequest(sip.INVITE)
		ph.Respond(ring, 180, "Ringing", "")
		caller.WaitResponse(180)
		w.until("node-a", "recipient:early")
		ph.Respond(ring, 200, "OK", b2buatest.CalleeSDP)
		ok := caller.WaitResponse(200)
		caller.Send(caller.InDialog("ACK", inv, ok, 1))
		ph.WaitRequest(sip.ACK)
		w.until("node-a", "recipient:confirmed")
		caller.Send(caller.InDialog("BYE", inv, ok, 2))
		ph.Respond(ph.WaitRequest(sip.BYE), 200, "OK", "")
		caller.WaitResponse(200)
		w.until("node-a", "recipient:terminated")
		waitIdle(t, a)
		waitIdle(t, b)
		if err := a.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}
