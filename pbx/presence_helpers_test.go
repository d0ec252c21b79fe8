package pbx_test

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/internal/sipx"
	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// blfPBX is a PBX trusting 127.0.0.0/8 with extensions 100, 200 (registered at the callee phone
// returned) and 201, and a caller phone.
func blfPBX(t *testing.T, cfg pbx.Config) (tp *testPBX, caller, callee *uaClient) {
	t.Helper()
	if cfg.Trusted == nil {
		cfg.Trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	}
	tp = startPBX(t, cfg)
	for _, ext := range []string{"100", "200", "201"} {
		tp.addExt(t, ext, "pw"+ext)
	}
	callee = newClient(t, tp.addr)
	err := tp.store.PutBinding(context.Background(), store.Binding{Extension: "200", Contact: "sip:200@" + callee.Addr(),
		Source: callee.Addr(), Transport: "udp", ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return tp, newClient(t, tp.addr), callee
}

// watcher is a phone's subscription to an extension's dialogs, as the test sees it.
type watcher struct {
	t    testing.TB
	ph   *uaClient
	sub  *sip.Request  // the SUBSCRIBE that created it
	ok   *sip.Response // its 200
	cseq int           // the watcher's last CSeq in the dialog
	last uint32        // CSeq of the last NOTIFY taken (retransmissions are skipped)
}

// subscribeSpec is a SUBSCRIBE from 201 at ph for ext's dialogs; expires "" sends no Expires.
func subscribeSpec(ph *uaClient, ext, expires string, extra ...string) reqSpec {
	hs := []string{"Contact: <" + ph.Contact("201") + ">", "Event: dialog", "Accept: " + pbx.ContentTypeDialogInfo}
	if expires != "" {
		hs = append(hs, "Expires: "+expires)
	}
	return reqSpec{Method: "SUBSCRIBE", From: "201", To: ext, CallID: fmt.Sprintf("sub-%d@test", time.Now().UnixNano()),
		Headers: append(hs, extra...)}
}

// trySubscribe sends r (answering one challenge as 201 when one comes) and returns the final
// answer and the request it answers.
func trySubscribe(t testing.TB, ph *uaClient, r reqSpec) (*sip.Response, *sip.Request) {
	t.Helper()
	msg := ph.Build(r)
	res := ph.Do(msg)
	if res.StatusCode == 401 {
		r.CSeq = 2
		r.Headers = append(append([]string{}, r.Headers...), authorize(t, res, r, "201", "pw201", "MD5"))
		msg = ph.Build(r)
		res = ph.Do(msg)
	}
	m, err := sip.ParseMessage([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	return res, m.(*sip.Request)
}

// subscribe subscribes ph to ext's dialogs and checks the 200.
func subscribe(t testing.TB, ph *uaClient, ext, expires string) *watcher {
	t.Helper()
	res, req := trySubscribe(t, ph, subscribeSpec(ph, ext, expires))
	if res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE to %s: %d %s (%s), want 200", ext, res.StatusCode, res.Reason, header(res, "Warning"))
	}
	if tag, _ := res.To().Params.Get("tag"); tag == "" {
		t.Fatal("200 to SUBSCRIBE without To tag")
	}
	if header(res, "Contact") == "" || header(res, "Expires") == "" {
		t.Fatalf("200 to SUBSCRIBE without Contact or Expires:\n%s", res)
	}
	return &watcher{t: t, ph: ph, sub: req, ok: res, cseq: int(req.CSeq().SeqNo)}
}

// notice is one NOTIFY a watcher took.
type notice struct {
	req   *sip.Request
	state string // Subscription-State
	doc   dialogInfoDoc
}

type dialogInfoDoc struct {
	XMLName xml.Name `xml:"dialog-info"`
	Version int      `xml:"version,attr"`
	State   string   `xml:"state,attr"`
	Entity  string   `xml:"entity,attr"`
	Dialogs []struct {
		ID        string `xml:"id,attr"`
		Direction string `xml:"direction,attr"`
		State     string `xml:"state"`
		Remote    string `xml:"remote>identity"`
	} `xml:"dialog"`
}

// states lists the document's dialogs as "direction:state".
func (n notice) states() string {
	var out []string
	for _, d := range n.doc.Dialogs {
		out = append(out, d.Direction+":"+d.State)
	}
	return strings.Join(out, ",")
}

// next takes the next NOTIFY of the subscription (skipping retransmissions), answers it with code
// and checks that it belongs to the subscription's dialog.
func (w *watcher) next(code int) notice {
	w.t.Helper()
	for {
		req := w.ph.WaitRequest(sip.NOTIFY)
		if req.CallID().Value() != w.sub.CallID().Value() {
			w.t.Fatalf("NOTIFY of another dialog: %s", req.CallID().Value())
		}
		w.ph.Respond(req, code, sipx.Reason(code), "")
		if req.CSeq().SeqNo == w.last {
			continue // a retransmission of the one before
		}
		if w.last != 0 && req.CSeq().SeqNo < w.last {
			w.t.Fatalf("NOTIFY CSeq %d after %d", req.CSeq().SeqNo, w.last)
		}
		w.last = req.CSeq().SeqNo
		w.checkDialog(req)
		n := notice{req: req, state: header(req, "Subscription-State")}
		if err := xml.Unmarshal(req.Body(), &n.doc); err != nil {
			w.t.Fatalf("NOTIFY body: %v\n%s", err, req.Body())
		}
		return n
	}
}

// checkDialog checks a NOTIFY's dialog identifiers, Event and Content-Type against the
// SUBSCRIBE and its 200 (RFC 6665 §4.2.2, RFC 3261 §12.2.1.1).
func (w *watcher) checkDialog(req *sip.Request) {
	w.t.Helper()
	fromTag, _ := req.From().Params.Get("tag")
	toTag, _ := req.To().Params.Get("tag")
	okTag, _ := w.ok.To().Params.Get("tag")
	subTag, _ := w.sub.From().Params.Get("tag")
	switch {
	case fromTag != okTag || toTag != subTag:
		w.t.Fatalf("NOTIFY tags from=%s to=%s, want from=%s to=%s", fromTag, toTag, okTag, subTag)
	case req.Recipient.String() != w.ph.Contact("201"):
		w.t.Fatalf("NOTIFY Request-URI %s, want the watcher's Contact %s", req.Recipient.String(), w.ph.Contact("201"))
	case header(req, "Event") != "dialog":
		w.t.Fatalf("NOTIFY Event %q, want dialog", header(req, "Event"))
	case header(req, "Content-Type") != pbx.ContentTypeDialogInfo:
		w.t.Fatalf("NOTIFY Content-Type %q", header(req, "Content-Type"))
	case header(req, "Contact") == "":
		w.t.Fatal("NOTIFY without Contact")
	}
}

// resubscribe sends a SUBSCRIBE in the subscription's dialog with Expires expires.
func (w *watcher) resubscribe(expires int) *sip.Response {
	w.t.Helper()
	w.cseq++
	lines := fmt.Sprintf("Event: dialog\r\nContact: <%s>\r\nExpires: %d\r\n", w.ph.Contact("201"), expires)
	return w.ph.Do(w.ph.InDialogWith("SUBSCRIBE", w.sub, w.ok, w.cseq, lines))
}

// expect takes the next NOTIFY and checks its Subscription-State prefix and dialog states.
func (w *watcher) expect(state, dialogs string) notice {
	w.t.Helper()
	n := w.next(200)
	if !strings.HasPrefix(n.state, state) || n.states() != dialogs {
		w.t.Fatalf("NOTIFY %q with dialogs %q, want %q with %q\n%s", n.state, n.states(), state, dialogs, n.req.Body())
	}
	return n
}

// waitSubscriptions waits until the PBX holds n subscriptions, or fails.
func waitSubscriptions(t testing.TB, tp *testPBX, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for tp.Subscriptions() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscriptions, want %d", tp.Subscriptions(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// quiet checks that no NOTIFY comes for d.
func quiet(t testing.TB, ph *uaClient, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if req, ok := ph.RecvMsg(time.Until(deadline)).(*sip.Request); ok {
			t.Fatalf("unexpected %s:\n%s", req.Method, req)
		}
	}
}
