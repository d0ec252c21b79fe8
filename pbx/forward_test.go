package pbx_test

import (
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// Default routing follows the extensions' forwarding settings without a dialplan: the caller
// gets 181, the new callee's INVITE carries Diversion (RFC 5806) and History-Info (RFC 7044,
// with RFC 4458 causes), and the record names the final callee.

// wantForwarded checks the Diversion and History-Info headers of a forwarded B-leg INVITE.
func wantForwarded(t *testing.T, bInv *sip.Request, diversion, historyInfo string) {
	t.Helper()
	if got := header(bInv, "Diversion"); got != diversion {
		t.Errorf("Diversion\n got %s\nwant %s", got, diversion)
	}
	if got := header(bInv, "History-Info"); got != historyInfo {
		t.Errorf("History-Info\n got %s\nwant %s", got, historyInfo)
	}
}

func TestForwardAlways(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		o := newOffice(t, dsn, pbx.Config{}, []string{"101", "102"})
		o.set(t, "101", store.ExtensionPatch{ForwardAlways: ptr("102")})
		inv := o.call("101")
		b := o.ring("102")
		h := o.host
		wantForwarded(t, b, "<sip:101@"+h+">;reason=unconditional;counter=1",
			"<sip:101@"+h+"?Reason=SIP%3Bcause%3D302>;index=1,<sip:102@"+h+";cause=302>;index=1.1;mp=1")
		rs := o.answer(t, "102", b, inv)
		if count(rs, 181) != 1 {
			t.Fatalf("caller got %v, want one 181", codes(rs))
		}
		for _, r := range rs {
			if r.StatusCode == 181 && (r.Reason != "Call Is Being Forwarded" || !strings.Contains(header(r, "Diversion"), "reason=unconditional")) {
				t.Fatalf("181 %q with Diversion %q", r.Reason, header(r, "Diversion"))
			}
		}
		o.quiet(t, nil, "101")
		cdr := lastCDR(t, o.tp, inv.CallID().Value())
		if cdr.Dialled != "101" || cdr.Callee != "102" || cdr.Disposition != store.Answered {
			t.Fatalf("CDR %+v", cdr)
		}
	})
}

func TestForwardBusy(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		o := newOffice(t, dsn, pbx.Config{}, []string{"101", "102"})
		o.set(t, "101", store.ExtensionPatch{ForwardBusy: ptr("102")})
		inv := o.call("101")
		o.phones["101"].Respond(o.ring("101"), 486, "Busy Here", "")
		b := o.ring("102")
		h := o.host
		wantForwarded(t, b, "<sip:101@"+h+">;reason=user-busy;counter=1",
			"<sip:101@"+h+"?Reason=SIP%3Bcause%3D486>;index=1,<sip:102@"+h+";cause=486>;index=1.1;mp=1")
		if rs := o.answer(t, "102", b, inv); count(rs, 181) != 1 {
			t.Fatalf("caller got %v, want one 181", codes(rs))
		}
	})
}

func TestForwardNoAnswer(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		o := newOffice(t, dsn, pbx.Config{}, []string{"101", "102", "103"})
		o.set(t, "101", store.ExtensionPatch{ForwardNoAnswer: ptr("102"), RingTimeout: ptr(1)})
		o.set(t, "103", store.ExtensionPatch{RingTimeout: ptr(1)})
		inv := o.call("101")
		start := time.Now()
		first := o.ring("101")
		o.phones["101"].Respond(first, 180, "Ringing", "")
		o.phones["101"].AcceptCancel(first) // the extension's ring timeout, 1 s
		b := o.ring("102")
		if d := time.Since(start); d < 900*time.Millisecond || d > 4*time.Second {
			t.Fatalf("forwarded after %v, want the ring timeout of 1 s", d)
		}
		h := o.host
		wantForwarded(t, b, "<sip:101@"+h+">;reason=no-answer;counter=1",
			"<sip:101@"+h+"?Reason=SIP%3Bcause%3D408>;index=1,<sip:102@"+h+";cause=408>;index=1.1;mp=1")
		if rs := o.answer(t, "102", b, inv); count(rs, 180) != 1 || count(rs, 181) != 1 {
			t.Fatalf("caller got %v, want 180 then 181", codes(rs))
		}

		// The ring timeout alone: 480 after 1 s.
		inv = o.call("103")
		start = time.Now()
		b = o.ring("103")
		o.phones["103"].Respond(b, 180, "Ringing", "") // a CANCEL waits for a provisional answer
		o.phones["103"].AcceptCancel(b)
		res := final(awaitFinal(t, o.caller, inv, 5*time.Second))
		if d := time.Since(start); res.StatusCode != 480 || d > 4*time.Second {
			t.Fatalf("got %d after %v, want 480 after 1 s", res.StatusCode, d)
		}
		waitIdle(t, o.tp)
	})
}

// TestForwardUnavailable: an extension with no registered phone forwards on no answer at once,
// with reason unavailable (cause 480).
func TestForwardUnavailable(t *testing.T) {
	o := newOffice(t, "sqlite::memory:", pbx.Config{}, []string{"102"}, "101")
	o.set(t, "101", store.ExtensionPatch{ForwardNoAnswer: ptr("102")})
	inv := o.call("101")
	b := o.ring("102")
	h := o.host
	wantForwarded(t, b, "<sip:101@"+h+">;reason=unavailable;counter=1",
		"<sip:101@"+h+"?Reason=SIP%3Bcause%3D480>;index=1,<sip:102@"+h+";cause=480>;index=1.1;mp=1")
	o.answer(t, "102", b, inv)
}

// TestForwardDoNotDisturb: do not disturb takes the busy path: forward on busy when set (the
// phone never rings), else 486.
func TestForwardDoNotDisturb(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		o := newOffice(t, dsn, pbx.Config{}, []string{"101", "102", "103"})
		o.set(t, "101", store.ExtensionPatch{DND: ptr(true), ForwardBusy: ptr("102")})
		o.set(t, "103", store.ExtensionPatch{DND: ptr(true)})
		inv := o.call("101")
		b := o.ring("102")
		h := o.host
		wantForwarded(t, b, "<sip:101@"+h+">;reason=do-not-disturb;counter=1",
			"<sip:101@"+h+"?Reason=SIP%3Bcause%3D486>;index=1,<sip:102@"+h+";cause=486>;index=1.1;mp=1")
		o.answer(t, "102", b, inv)

		res := final(awaitFinal(t, o.caller, o.call("103"), 5*time.Second))
		if res.StatusCode != 486 || !strings.Contains(header(res, "Warning"), "do not disturb") {
			t.Fatalf("got %d (%s), want 486 for do not disturb", res.StatusCode, header(res, "Warning"))
		}
		o.quiet(t, nil, "101", "103")
	})
}

// TestForwardDisabled: a disabled extension is gone (410), whatever its forwards say.
func TestForwardDisabled(t *testing.T) {
	o := newOffice(t, "sqlite::memory:", pbx.Config{}, []string{"101", "102"})
	o.set(t, "101", store.ExtensionPatch{Enabled: ptr(false), ForwardAlways: ptr("102")})
	res := final(awaitFinal(t, o.caller, o.call("101"), 5*time.Second))
	if res.StatusCode != 410 || !strings.Contains(header(res, "Warning"), "extension 101 is disabled") {
		t.Fatalf("got %d (%s), want 410", res.StatusCode, header(res, "Warning"))
	}
	o.quiet(t, nil, "101", "102")
}

// TestForwardChain: 101 forwards always to 102, which is busy and forwards to 103. The caller
// gets a 181 per forward; 103's INVITE holds the whole history.
func TestForwardChain(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		o := newOffice(t, dsn, pbx.Config{}, []string{"101", "102", "103"})
		o.set(t, "101", store.ExtensionPatch{ForwardAlways: ptr("102")})
		o.set(t, "102", store.ExtensionPatch{ForwardBusy: ptr("103")})
		inv := o.call("101")
		busy := o.ring("102")
		o.phones["102"].Respond(busy, 486, "Busy Here", "")
		b := o.ring("103")
		h := o.host
		wantForwarded(t, b,
			"<sip:102@"+h+">;reason=user-busy;counter=1 | <sip:101@"+h+">;reason=unconditional;counter=1",
			"<sip:101@"+h+"?Reason=SIP%3Bcause%3D302>;index=1,<sip:102@"+h+";cause=302?Reason=SIP%3Bcause%3D486>;index=1.1;mp=1,<sip:103@"+h+";cause=486>;index=1.1.1;mp=1.1")
		if rs := o.answer(t, "103", b, inv); count(rs, 181) != 2 {
			t.Fatalf("caller got %v, want two 181s", codes(rs))
		}
		o.quiet(t, map[string]bool{busy.CallID().Value(): true}, "101", "102")
		if cdr := lastCDR(t, o.tp, inv.CallID().Value()); cdr.Dialled != "101" || cdr.Callee != "103" {
			t.Fatalf("CDR %+v", cdr)
		}
	})
}

// TestForwardLoop: 101 and 102 forward to each other when busy: each rings once, then the call
// ends with 482. Two extensions forwarding always to each other end so at once.
func TestForwardLoop(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		o := newOffice(t, dsn, pbx.Config{}, []string{"101", "102", "104", "105"})
		o.set(t, "101", store.ExtensionPatch{ForwardBusy: ptr("102")})
		o.set(t, "102", store.ExtensionPatch{ForwardBusy: ptr("101")})
		o.set(t, "104", store.ExtensionPatch{ForwardAlways: ptr("105")})
		o.set(t, "105", store.ExtensionPatch{ForwardAlways: ptr("104")})
		inv := o.call("101")
		seen := map[string]bool{}
		for _, n := range []string{"101", "102"} {
			b := o.ring(n)
			seen[b.CallID().Value()] = true
			o.phones[n].Respond(b, 486, "Busy Here", "")
		}
		rs := awaitFinal(t, o.caller, inv, 5*time.Second)
		if res := final(rs); res.StatusCode != 482 || res.Reason != "Loop Detected" || !strings.Contains(header(res, "Warning"), "loop") {
			t.Fatalf("got %v (%s), want 482 Loop Detected", codes(rs), header(res, "Warning"))
		}
		o.quiet(t, seen, "101", "102")

		if res := final(awaitFinal(t, o.caller, o.call("104"), 5*time.Second)); res.StatusCode != 482 {
			t.Fatalf("forward-always loop: got %d, want 482", res.StatusCode)
		}
		o.quiet(t, nil, "104", "105")
		waitIdle(t, o.tp)
	})
}

// TestForwardHopLimit: a chain of forwards ends after five with 483, ringing nobody.
func TestForwardHopLimit(t *testing.T) {
	numbers := []string{"101", "102", "103", "104", "105", "106", "107"}
	o := newOffice(t, "sqlite::memory:", pbx.Config{}, []string{"107"}, numbers[:6]...)
	for i, n := range numbers[:6] {
		o.set(t, n, store.ExtensionPatch{ForwardAlways: ptr(numbers[i+1])})
	}
	rs := awaitFinal(t, o.caller, o.call("101"), 5*time.Second)
	if res := final(rs); res.StatusCode != 483 || count(rs, 181) != 5 {
		t.Fatalf("got %v, want five 181s and 483", codes(rs))
	}
	o.quiet(t, nil, "107")
}

// TestForwardToURI: a forward to a sip: URI outside the PBX calls that URI directly.
func TestForwardToURI(t *testing.T) {
	o := newOffice(t, "sqlite::memory:", pbx.Config{}, []string{"101"})
	outside := newClient(t, o.tp.addr)
	o.phones["alice"] = outside
	uri := "sip:alice@" + outside.Addr()
	o.set(t, "101", store.ExtensionPatch{ForwardAlways: ptr(uri)})
	inv := o.call("101")
	b := o.ring("alice")
	if b.Recipient.String() != uri {
		t.Fatalf("Request-URI %s, want %s", b.Recipient.String(), uri)
	}
	h := o.host
	wantForwarded(t, b, "<sip:101@"+h+">;reason=unconditional;counter=1",
		"<sip:101@"+h+"?Reason=SIP%3Bcause%3D302>;index=1,<"+uri+";cause=302>;index=1.1;mp=1")
	o.answer(t, "alice", b, inv)
	o.quiet(t, nil, "101")
}

// TestForwardToLocalURI: a sip: URI naming the PBX is the extension: its settings apply, and a
// loop through it is seen.
func TestForwardToLocalURI(t *testing.T) {
	o := newOffice(t, "sqlite::memory:", pbx.Config{}, []string{"102"}, "101", "103", "104", "105")
	o.set(t, "101", store.ExtensionPatch{ForwardAlways: ptr("sip:103@pbx.test")})
	o.set(t, "103", store.ExtensionPatch{DND: ptr(true), ForwardBusy: ptr("102")})
	o.set(t, "104", store.ExtensionPatch{ForwardAlways: ptr("sip:105@pbx.test")})
	o.set(t, "105", store.ExtensionPatch{ForwardAlways: ptr("sip:104@" + o.host)})
	inv := o.call("101")
	b := o.ring("102")
	h := o.host
	wantForwarded(t, b,
		"<sip:103@"+h+">;reason=do-not-disturb;counter=1 | <sip:101@"+h+">;reason=unconditional;counter=1",
		"<sip:101@"+h+"?Reason=SIP%3Bcause%3D302>;index=1,<sip:103@"+h+";cause=302?Reason=SIP%3Bcause%3D486>;index=1.1;mp=1,"+
			"<sip:102@"+h+";cause=486>;index=1.1.1;mp=1.1")
	o.answer(t, "102", b, inv)

	rs := awaitFinal(t, o.caller, o.call("104"), 5*time.Second)
	if res := final(rs); res.StatusCode != 482 || count(rs, 181) != 1 {
		t.Fatalf("got %v, want one 181 and 482", codes(rs))
	}
}
