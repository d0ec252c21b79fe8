package pbx_test

import (
	"context"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// until takes the watcher's NOTIFYs until one shows the dialogs states ("direction:state,..."),
// or fails after 10 s.
func (w *watcher) until(states string) notice {
	w.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := w.next(200)
		if n.states() == states {
			return n
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("no NOTIFY with %q within 10s; last %q", states, n.states())
		}
	}
}

// TestBLFAcrossNodes: a phone watching 101 through node B sees 101's call on node A ring, be
// answered and end; a phone that starts watching while the call is up sees it too.
func TestBLFAcrossNodes(t *testing.T) {
	eachShared(t, func(t *testing.T, dsn string) {
		a, b := twoNodes(t, dsn)
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
		ringing := w.until("recipient:early")
		if got := ringing.doc.Dialogs[0].Remote; got != "sip:100@pbx.test" {
			t.Errorf("the ringing dialog's remote identity %q, want the caller", got)
		}
		phone.Respond(bInv, 200, "OK", calleeSDP)
		ok := caller.WaitResponse(200)
		phone.WaitRequest(sip.ACK)
		caller.Send(caller.InDialog("ACK", inv, ok, 1))
		w.until("recipient:confirmed")

		late := subscribe(t, newClient(t, b.addr), "101", "600")
		late.until("recipient:confirmed")

		hangUp(t, a, caller, phone, inv, ok, 2)
		w.until("recipient:terminated")
		late.until("recipient:terminated")
		waitIdle(t, b)
		if err := a.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}
