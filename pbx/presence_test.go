package pbx_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// TestBLFCallStates: a watcher of the callee sees idle, early (recipient), confirmed, terminated;
// a watcher of the caller sees trying, early, confirmed, terminated as the initiator. Each NOTIFY
// is in the subscription's dialog with a higher CSeq and dialog-info version.
func TestBLFCallStates(t *testing.T) {
	tp, caller, callee := blfPBX(t, pbx.Config{})
	wCallee := subscribe(t, newClient(t, tp.addr), "200", "600")
	if got := header(wCallee.ok, "Expires"); got != "600" {
		t.Fatalf("Expires %s, want 600", got)
	}
	first := wCallee.expect("active;expires=", "")
	if first.doc.Version != 0 || first.doc.State != "full" || first.doc.Entity != "sip:200@pbx.test" {
		t.Fatalf("first document: version %d state %q entity %q", first.doc.Version, first.doc.State, first.doc.Entity)
	}
	wCaller := subscribe(t, newClient(t, tp.addr), "100", "")
	if got := header(wCaller.ok, "Expires"); got != "3600" {
		t.Fatalf("default Expires %s, want 3600", got)
	}
	wCaller.expect("active;expires=", "")

	msg, inv := caller.Invite("100", "200", nil)
	caller.Send(msg)
	caller.WaitResponse(100)
	wCaller.expect("active", "initiator:trying")
	bInv := callee.WaitRequest(sip.INVITE)
	callee.Respond(bInv, 180, "Ringing", "")
	caller.WaitResponse(180)
	ringing := wCallee.expect("active", "recipient:early")
	if got := ringing.doc.Dialogs[0].Remote; got != "sip:100@pbx.test" {
		t.Fatalf("ringing dialog's remote identity %q, want the caller", got)
	}
	if strings.Contains(string(ringing.req.Body()), inv.CallID().Value()) {
		t.Fatal("dialog-info reveals the caller's Call-ID")
	}
	wCaller.expect("active", "initiator:early")

	callee.Respond(bInv, 200, "OK", calleeSDP)
	ok := caller.WaitResponse(200)
	callee.WaitRequest(sip.ACK)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	wCallee.expect("active", "recipient:confirmed")
	wCaller.expect("active", "initiator:confirmed")

	hangUp(t, tp, caller, callee, inv, ok, 2)
	last := wCallee.expect("active", "recipient:terminated")
	wCaller.expect("active", "initiator:terminated")
	if last.doc.Version != 3 {
		t.Fatalf("version %d after four NOTIFYs, want 3", last.doc.Version)
	}
}

// TestBLFRefreshAndUnsubscribe: a re-SUBSCRIBE in the dialog refreshes (200, a NOTIFY with the
// new expiry); Expires: 0 removes the subscription with a final NOTIFY; the dialog is gone after.
func TestBLFRefreshAndUnsubscribe(t *testing.T) {
	tp, _, _ := blfPBX(t, pbx.Config{})
	w := subscribe(t, newClient(t, tp.addr), "200", "120")
	w.expect("active;expires=120", "")

	if res := w.resubscribe(300); res.StatusCode != 200 || header(res, "Expires") != "300" {
		t.Fatalf("refresh: %d Expires %q, want 200 and 300", res.StatusCode, header(res, "Expires"))
	}
	if n := w.expect("active;expires=300", ""); n.doc.Version != 1 {
		t.Fatalf("version %d after refresh, want 1", n.doc.Version)
	}
	if res := w.resubscribe(7200); header(res, "Expires") != "3600" {
		t.Fatalf("refresh for 7200 s granted %q, want 3600 (SubscriptionMaxExpires)", header(res, "Expires"))
	}
	w.expect("active;expires=3600", "")

	if res := w.resubscribe(0); res.StatusCode != 200 || header(res, "Expires") != "0" {
		t.Fatalf("unsubscribe: %d Expires %q", res.StatusCode, header(res, "Expires"))
	}
	w.expect("terminated;reason=timeout", "")
	waitSubscriptions(t, tp, 0)
	if res := w.resubscribe(300); res.StatusCode != 481 {
		t.Fatalf("refresh after unsubscribe: %d, want 481", res.StatusCode)
	}
	quiet(t, w.ph, 300*time.Millisecond)
}

// TestBLFExpiry: a subscription not refreshed ends with a NOTIFY terminated;reason=timeout
// (RFC 6665 §4.2.2).
func TestBLFExpiry(t *testing.T) {
	tp, _, _ := blfPBX(t, pbx.Config{SubscriptionMinExpires: time.Second})
	w := subscribe(t, newClient(t, tp.addr), "200", "1")
	start := time.Now()
	w.expect("active;expires=1", "")
	if tp.Subscriptions() != 1 {
		t.Fatalf("%d subscriptions, want 1", tp.Subscriptions())
	}
	w.expect("terminated;reason=timeout", "")
	if d := time.Since(start); d < 800*time.Millisecond || d > 3*time.Second {
		t.Fatalf("expired after %v, want about 1 s", d)
	}
	if res := w.resubscribe(60); res.StatusCode != 481 {
		t.Fatalf("refresh after expiry: %d, want 481", res.StatusCode)
	}
}

// TestBLFFetch: Expires: 0 on a new SUBSCRIBE fetches the state once (RFC 6665 §4.4.3).
func TestBLFFetch(t *testing.T) {
	tp, _, _ := blfPBX(t, pbx.Config{})
	w := subscribe(t, newClient(t, tp.addr), "200", "0")
	w.expect("terminated;reason=timeout", "")
	quiet(t, w.ph, 300*time.Millisecond)
}

// TestBLFRefusals: what a SUBSCRIBE the PBX cannot serve gets, each with a Warning saying why.
func TestBLFRefusals(t *testing.T) {
	tp, _, _ := blfPBX(t, pbx.Config{})
	ph := newClient(t, tp.addr)
	withHeaders := func(ext, expires string, drop string, extra ...string) reqSpec {
		r := subscribeSpec(ph, ext, expires)
		var hs []string
		for _, h := range r.Headers {
			if drop == "" || !strings.HasPrefix(h, drop+":") {
				hs = append(hs, h)
			}
		}
		r.Headers = append(hs, extra...)
		return r
	}
	for _, tc := range []struct {
		name   string
		req    reqSpec
		code   int
		header string // a header the answer must carry, "Name: value"
	}{
		{"interval too brief", withHeaders("200", "10", ""), 423, "Min-Expires: 60"},
		{"other event package", withHeaders("200", "600", "Event", "Event: presence"), 489, "Allow-Events: dialog, message-summary"},
		{"event template package", withHeaders("200", "600", "Event", "Event: dialog.winfo"), 489, "Allow-Events: dialog, message-summary"},
		{"no event", withHeaders("200", "600", "Event"), 400, "Allow-Events: dialog, message-summary"},
		{"unknown extension", withHeaders("999", "600", ""), 404, ""},
		{"no from tag", withHeaders("200", "600", "From", "From: <sip:201@pbx.test>"), 400, ""},
		{"no contact", withHeaders("200", "600", "Contact"), 400, ""},
		{"bad expires", withHeaders("200", "soon", ""), 400, ""},
		{"accept excludes dialog-info", withHeaders("200", "600", "Accept", "Accept: application/pidf+xml"), 406,
			"Accept: " + pbx.ContentTypeDialogInfo},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := ph.Do(ph.Build(tc.req))
			if res.StatusCode != tc.code {
				t.Fatalf("%d %s (%s), want %d", res.StatusCode, res.Reason, header(res, "Warning"), tc.code)
			}
			if header(res, "Warning") == "" {
				t.Fatal("no Warning saying why")
			}
			if name, value, _ := strings.Cut(tc.header, ": "); name != "" && header(res, name) != value {
				t.Fatalf("%s %q, want %q", name, header(res, name), value)
			}
		})
	}
	quiet(t, ph, 200*time.Millisecond) // no NOTIFY for a refused SUBSCRIBE
}

// TestBLFAuthChallenge: a SUBSCRIBE from an untrusted source is challenged (401) like a
// REGISTER; with the credentials of an extension it is served.
func TestBLFAuthChallenge(t *testing.T) {
	tp, _, _ := blfPBX(t, pbx.Config{Trusted: []netip.Prefix{}})
	ph := newClient(t, tp.addr)
	first := ph.Do(ph.Build(subscribeSpec(ph, "200", "600")))
	if first.StatusCode != 401 || header(first, "WWW-Authenticate") == "" {
		t.Fatalf("untrusted SUBSCRIBE: %d, want 401 with WWW-Authenticate", first.StatusCode)
	}
	quiet(t, ph, 200*time.Millisecond)
	w := subscribe(t, ph, "200", "600") // answers the challenge as 201
	w.expect("active", "")
}

// TestBLFLimits: past MaxSubscriptionsPerSource a source gets 403, past MaxSubscriptions
// anyone gets 503 with Retry-After; a subscription that ends makes room.
func TestBLFLimits(t *testing.T) {
	t.Run("per source", func(t *testing.T) {
		tp, _, _ := blfPBX(t, pbx.Config{Trusted: []netip.Prefix{}, MaxSubscriptionsPerSource: 2})
		ph := newClient(t, tp.addr)
		w1 := subscribe(t, ph, "200", "600")
		w1.expect("active", "")
		subscribe(t, ph, "100", "600").expect("active", "")
		res, _ := trySubscribe(t, ph, subscribeSpec(ph, "201", "600"))
		if res.StatusCode != 403 || !strings.Contains(header(res, "Warning"), "too many subscriptions from this source") {
			t.Fatalf("third subscription: %d %q, want 403 with a Warning", res.StatusCode, header(res, "Warning"))
		}
		w1.resubscribe(0)
		w1.expect("terminated", "")
		waitSubscriptions(t, tp, 1) // the subscription's goroutine leaves after the answer
		subscribe(t, ph, "201", "600").expect("active", "")
	})
	t.Run("total", func(t *testing.T) {
		tp, _, _ := blfPBX(t, pbx.Config{MaxSubscriptions: 1})
		subscribe(t, newClient(t, tp.addr), "200", "600").expect("active", "")
		ph := newClient(t, tp.addr)
		res, _ := trySubscribe(t, ph, subscribeSpec(ph, "100", "600"))
		if res.StatusCode != 503 || header(res, "Retry-After") == "" || header(res, "Warning") == "" {
			t.Fatalf("second subscription: %d, want 503 with Retry-After and Warning", res.StatusCode)
		}
	})
}

// TestBLFWatcherGone: a NOTIFY answered 481 ends the subscription: no more NOTIFYs, and its
// dialog is unknown after.
func TestBLFWatcherGone(t *testing.T) {
	tp, caller, callee := blfPBX(t, pbx.Config{})
	w := subscribe(t, newClient(t, tp.addr), "200", "600")
	w.expect("active", "")

	msg, inv := caller.Invite("100", "200", nil)
	caller.Send(msg)
	bInv := callee.WaitRequest(sip.INVITE)
	callee.Respond(bInv, 180, "Ringing", "")
	if n := w.next(481); n.states() != "recipient:early" {
		t.Fatalf("NOTIFY %q, want the ringing state", n.states())
	}
	waitSubscriptions(t, tp, 0)
	callee.Respond(bInv, 200, "OK", calleeSDP)
	ok := caller.WaitResponse(200)
	callee.WaitRequest(sip.ACK)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	quiet(t, w.ph, 300*time.Millisecond)
	if res := w.resubscribe(600); res.StatusCode != 481 {
		t.Fatalf("refresh after the watcher's 481: %d, want 481", res.StatusCode)
	}
	hangUp(t, tp, caller, callee, inv, ok, 2)
}

// TestBLFOverTCP: a subscription made over TCP gets its NOTIFYs over the same connection.
func TestBLFOverTCP(t *testing.T) {
	tp, _, _ := blfPBX(t, pbx.Config{})
	ph := b2buatest.NewTCPPhone(t, tp.TCPAddr().String())
	w := subscribe(t, ph, "200", "600")
	n := w.expect("active", "")
	if v := n.req.Via(); !strings.EqualFold(v.Transport, "TCP") {
		t.Fatalf("NOTIFY Via transport %s, want TCP", v.Transport)
	}
	if res := w.resubscribe(0); res.StatusCode != 200 {
		t.Fatalf("unsubscribe over TCP: %d", res.StatusCode)
	}
	w.expect("terminated;reason=timeout", "")
}

// TestBLFShutdown: Shutdown ends every subscription with a final NOTIFY that asks the phone to
// subscribe again later.
func TestBLFShutdown(t *testing.T) {
	tp, _, _ := blfPBX(t, pbx.Config{})
	w := subscribe(t, newClient(t, tp.addr), "200", "600")
	w.expect("active", "")
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- tp.Shutdown(ctx)
	}()
	w.expect("terminated;reason=probation;retry-after=30", "")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestBLFDialogDetails: NOTIFYs carry the SUBSCRIBE's Record-Route as Route and its Event id
// (RFC 6665 §4.2.2, §8.2.1); a re-SUBSCRIBE with a new Contact moves the NOTIFYs there (a target
// refresh, §4.1.2.1).
func TestBLFDialogDetails(t *testing.T) {
	tp, _, _ := blfPBX(t, pbx.Config{})
	ph := newClient(t, tp.addr)
	r := subscribeSpec(ph, "200", "600", "Record-Route: <sip:edge.test;lr>")
	for i, h := range r.Headers {
		if strings.HasPrefix(h, "Event:") {
			r.Headers[i] = "Event: dialog;id=42"
		}
	}
	res, _ := trySubscribe(t, ph, r)
	if res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
	}
	n := ph.WaitRequest(sip.NOTIFY)
	ph.Respond(n, 200, "OK", "")
	if got := header(n, "Route"); got != "<sip:edge.test;lr>" {
		t.Fatalf("NOTIFY Route %q, want the Record-Route", got)
	}
	if got := header(n, "Event"); got != "dialog;id=42" {
		t.Fatalf("NOTIFY Event %q, want dialog;id=42", got)
	}

	w := subscribe(t, ph, "100", "600")
	w.expect("active", "")
	moved := newClient(t, tp.addr)
	w.cseq++
	lines := "Event: dialog\r\nContact: <" + moved.Contact("201") + ">\r\nExpires: 600\r\n"
	if res := moved.Do(moved.InDialogWith("SUBSCRIBE", w.sub, w.ok, w.cseq, lines)); res.StatusCode != 200 {
		t.Fatalf("target refresh: %d", res.StatusCode)
	}
	req := moved.WaitRequest(sip.NOTIFY)
	moved.Respond(req, 200, "OK", "")
	if req.Recipient.String() != moved.Contact("201") || req.CallID().Value() != w.sub.CallID().Value() {
		t.Fatalf("NOTIFY after target refresh to %s in %s", req.Recipient.String(), req.CallID().Value())
	}
}

// TestBLFRingGroupMembers: every member a parallel ring group rings shows the call ringing; when
// one answers, the others' lamps go out and the one that answered shows the call confirmed.
func TestBLFRingGroupMembers(t *testing.T) {
	o := newOffice(t, "sqlite::memory:", pbx.Config{}, []string{"101", "102"})
	if err := o.tp.store.CreateGroup(t.Context(), groupOf("501", store.GroupParallel, 5, "101", "102")); err != nil {
		t.Fatal(err)
	}
	w101, w102 := subscribe(t, newClient(t, o.tp.addr), "101", ""), subscribe(t, newClient(t, o.tp.addr), "102", "")
	w101.expect("active", "")
	w102.expect("active", "")

	inv := o.call("501")
	rung := map[string]*sip.Request{}
	for len(rung) < 2 {
		ext, b := o.nextRing(t, 2*time.Second)
		rung[ext] = b
	}
	w101.expect("active", "recipient:early")
	w102.expect("active", "recipient:early")
	o.phones["101"].RespondWith(rung["101"], 180, "Ringing", "")
	// 102 answers; the call is hung up only after the lamps were read: a NOTIFY waits for the
	// watcher's answer to the one before, so a hang-up right after the answer could otherwise
	// come first and leave 102's lamp only the terminated state to show.
	p := o.phones["102"]
	p.Respond(rung["102"], 200, "OK", calleeSDP)
	ok := final(awaitFinal(t, o.caller, inv, 5*time.Second))
	if ok.StatusCode != 200 {
		t.Fatalf("caller got %d, want 200", ok.StatusCode)
	}
	o.caller.Send(o.caller.InDialog("ACK", inv, ok, 1))
	p.WaitRequest(sip.ACK)
	o.phones["101"].AcceptCancel(rung["101"])
	w101.expect("active", "recipient:terminated")
	w102.expect("active", "recipient:confirmed")
	hangUp(t, o.tp, o.caller, p, inv, ok, 2)
	w102.expect("active", "recipient:terminated")
}

// TestBLFParkRingBack: a watcher of 200 sees its call ringing and answered, then ended when 200
// parks the caller; after the park timeout 200 is rung back (early) and, once it answers, in the
// call again (confirmed); the caller's BYE ends it. A watcher of park slot 701 sees the caller
// wait there (confirmed, with the caller as the remote party) until the ring-back takes it.
func TestBLFParkRingBack(t *testing.T) {
	tp, caller, callee := blfPBX(t, pbx.Config{Features: pbx.Features{ParkTimeout: 300 * time.Millisecond}})
	w := subscribe(t, newClient(t, tp.addr), "200", "600")
	w.expect("active;expires=", "")
	slot := subscribe(t, newClient(t, tp.addr), "701", "600")
	slot.expect("active;expires=", "")
	msg, inv := caller.Invite("100", "200", nil)
	caller.Send(msg)
	bInv := callee.WaitRequest(sip.INVITE)
	callee.Respond(bInv, 180, "Ringing", "")
	w.expect("active", "recipient:early")
	callee.Respond(bInv, 200, "OK", calleeSDP)
	ok := caller.WaitResponse(200)
	callee.WaitRequest(sip.ACK)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	w.expect("active", "recipient:confirmed")

	callee.Send(callee.InDialogAsCallee("REFER", bInv, 5, "Contact: <"+callee.Contact("200")+">\r\nRefer-To: <sip:700@pbx.test>\r\n"))
	callee.WaitResponse(202)
	for {
		n := callee.WaitRequest(sip.NOTIFY)
		callee.Respond(n, 200, "OK", "")
		if strings.HasPrefix(header(n, "Subscription-State"), "terminated") {
			break
		}
	}
	callee.Respond(callee.WaitRequest(sip.BYE), 200, "OK", "")
	w.expect("active", "recipient:terminated")
	if parked := slot.expect("active", "recipient:confirmed"); parked.doc.Dialogs[0].Remote != "sip:100@pbx.test" {
		t.Fatalf("slot 701's dialog with %q, want the parked caller", parked.doc.Dialogs[0].Remote)
	}

	back := callee.WaitRequest(sip.INVITE) // the park timeout: 200 is rung back
	callee.Respond(back, 180, "Ringing", "")
	w.expect("active", "recipient:early")
	callee.Respond(back, 200, "OK", calleeSDP)
	callee.WaitRequest(sip.ACK)
	re := caller.WaitRequest(sip.INVITE)
	caller.Respond(re, 200, "OK", b2buatest.SDP)
	caller.WaitRequest(sip.ACK)
	w.expect("active", "recipient:confirmed")
	slot.expect("active", "recipient:terminated")
	caller.Send(caller.InDialog("BYE", inv, ok, 2))
	caller.WaitResponse(200)
	callee.Respond(callee.WaitRequest(sip.BYE), 200, "OK", "")
	w.expect("active", "recipient:terminated")
	waitIdle(t, tp)
}
