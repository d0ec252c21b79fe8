package pbx_test

import (
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/pbx"
)

// next returns the next event of sub, or fails after 5 s.
func next(t *testing.T, sub *pbx.Subscription) pbx.Event {
	t.Helper()
	select {
	case ev, ok := <-sub.C:
		if !ok {
			t.Fatal("subscription closed")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5 s")
	}
	return pbx.Event{}
}

func TestCallEvents(t *testing.T) {
	tp, caller, callees := callPBX(t, pbx.Config{}, 1)
	sub := tp.Subscribe(16)
	full := tp.Subscribe(1) // a subscriber that never reads: it must not hold calls up
	inv, ok, _ := answeredCall(t, tp, caller, callees[0])
	hangUp(t, tp, caller, callees[0], inv, ok, 2)

	want := []struct {
		kind   string
		status int
	}{{"call.new", 0}, {"call.leg_ringing", 0}, {"call.ringing", 180}, {"call.answered", 200}, {"call.ended", 200}}
	for _, w := range want {
		ev := next(t, sub)
		if ev.Kind != w.kind || ev.Status != w.status || ev.CallID != inv.CallID().Value() || ev.Caller != "100" || ev.Callee != "200" {
			t.Fatalf("got %+v, want %s with status %d", ev, w.kind, w.status)
		}
		if ev.Kind == "call.leg_ringing" && ev.Leg != "200" {
			t.Fatalf("leg event %+v", ev)
		}
		if ev.Kind == "call.ended" && (ev.HangupBy != "caller" || ev.Reason == "") {
			t.Fatalf("ended event %+v", ev)
		}
	}
	if full.Dropped() != 4 {
		t.Fatalf("full subscriber: %d dropped, want 4 (buffer 1 of 5 events)", full.Dropped())
	}
	sub.Close()
	sub.Close()
	if _, open := <-sub.C; open {
		t.Fatal("C still open after Close")
	}
}

func TestRegistrationEvents(t *testing.T) {
	tp := startPBX(t, pbx.Config{})
	tp.addExt(t, "120", "pw120")
	sub := tp.Subscribe(16)
	c := newClient(t, tp.addr)
	for i, tc := range []struct {
		contact string
		kind    string
	}{
		{"<sip:120@127.0.0.1:7000>", pbx.RegistrationAdded},
		{"<sip:120@127.0.0.1:7000>", pbx.RegistrationRefreshed},
		{"<sip:120@127.0.0.1:7000>;expires=0", pbx.RegistrationRemoved},
	} {
		r := registerSpec("120", "reg-events", 1+2*i, "Contact: "+tc.contact)
		if res := register(t, c, r, "120", "pw120", "MD5"); res.StatusCode != 200 {
			t.Fatalf("register %d: %d", i, res.StatusCode)
		}
		ev := next(t, sub)
		if ev.Kind != tc.kind || ev.Extension != "120" || ev.Contact != "sip:120@127.0.0.1:7000" || ev.Source != c.Addr() {
			t.Fatalf("step %d: %+v, want %s", i, ev, tc.kind)
		}
	}
	// Shutdown closes every subscription.
	tp.Shutdown(t.Context())
	for range sub.C {
	}
}
