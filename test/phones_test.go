package test

// Real softphones (baresip, see baresip_driver_test.go) registered with the officepbx binary
// under its default settings: digest authentication as served out of the box, no trusted
// networks. Only the addresses, the database and the relay's port range are set.

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/internal/testenv"
)

// office is an officepbx with baresip phones registered to it.
type office struct {
	srv    *server
	dsn    string
	phones map[string]*phone
}

// tones: each extension sends its own frequency, so a phone's received audio tells whose it is.
var tones = map[string]int{"101": 400, "102": 1000, "103": 1600}

// startOffice adds the extensions (password "pw" + number) to a fresh database, runs officepbx
// serve with the media relay on 127.0.0.1, starts one baresip per extension over transport
// ("udp" or "tcp") and waits until each registered. Up to three phones (101, 102, 103).
func startOffice(t *testing.T, transport string, exts ...string) *office {
	t.Helper()
	return startOfficeWith(t, transport, exts, exts)
}

// startOfficeWith is startOffice for the extensions exts, with baresip phones for those in
// baresips only (the test brings the other phones); serve gets serveArgs besides.
func startOfficeWith(t *testing.T, transport string, exts, baresips []string, serveArgs ...string) *office {
	t.Helper()
	baresipBin(t) // skip (or fail under CI) before building anything
	o := &office{dsn: testenv.SQLiteDSN(t), phones: map[string]*phone{}}
	for _, ext := range exts {
		cli(t, "ext", "add", ext, "--password", "pw"+ext, "--name", "Phone "+ext, "--db", o.dsn)
	}
	lo := freePortRange(t, 100)
	o.srv = startServer(t, append([]string{"--db", o.dsn, "--rtp-ip", "127.0.0.1", "--rtp-ports", fmt.Sprintf("%d-%d", lo, lo+99)}, serveArgs...)...)
	for _, ext := range baresips {
		hz, ok := tones[ext]
		if !ok {
			t.Fatalf("no tone for extension %s", ext)
		}
		o.phones[ext] = startPhone(t, o.srv.addr, phoneSpec{Ext: ext, Password: "pw" + ext, Transport: transport, ToneHz: hz})
	}
	for _, ext := range baresips {
		o.phones[ext].register()
	}
	return o
}

// call has caller dial callee, waits until both sides are connected and each has received a
// second of audio, then hangs up on hangupBy's side, waits until both sides closed the call and
// checks the audio each side received: the other side's tone, not its own.
func (o *office) call(t *testing.T, caller, callee, hangupBy *phone) {
	t.Helper()
	caller.dial(callee.spec.Ext)
	if ev := callee.await(10*time.Second, "CALL_ESTABLISHED", "CALL_CLOSED"); ev.Type != "CALL_ESTABLISHED" || ev.Direction != "incoming" {
		t.Fatalf("callee %s: %v, want an incoming call established\nPBX log:\n%s", callee.spec.Ext, ev, o.srv.logs())
	}
	if ev := caller.await(10*time.Second, "CALL_ESTABLISHED", "CALL_CLOSED"); ev.Type != "CALL_ESTABLISHED" || ev.Direction != "outgoing" {
		t.Fatalf("caller %s: %v, want its call established\nPBX log:\n%s", caller.spec.Ext, ev, o.srv.logs())
	}
	caller.awaitAudio(1, 10*time.Second)
	callee.awaitAudio(1, 10*time.Second)
	hangupBy.hangup()
	for _, p := range []*phone{caller, callee} {
		p.await(10*time.Second, "CALL_CLOSED")
	}
	for _, c := range []struct{ p, far *phone }{{caller, callee}, {callee, caller}} {
		samples := c.p.receivedAudio()
		far, own := toneSeconds(samples, c.far.spec.ToneHz), toneSeconds(samples, c.p.spec.ToneHz)
		t.Logf("%s received %.2fs of audio: %.2fs of %s's %d Hz tone, %.2fs of its own %d Hz",
			c.p.spec.Ext, float64(len(samples))/8000, far, c.far.spec.Ext, c.far.spec.ToneHz, own, c.p.spec.ToneHz)
		if far < 0.8 || own > 0.1 {
			t.Errorf("%s received %.2fs of %s's tone (want at least 0.8s) and %.2fs of its own (want none)",
				c.p.spec.Ext, far, c.far.spec.Ext, own)
		}
	}
}

var callEnded = regexp.MustCompile(`msg="call ended" .*status=(\d+) disposition=(\S+) hangup_by=(\S+) .*caller_packets=(\d+) callee_packets=(\d+)`)

// checkCallEnded waits for the PBX's n-th "call ended" line and checks that the call was answered,
// hung up by the expected side, and that the relay carried RTP from both phones.
func (o *office) checkCallEnded(t *testing.T, n int, hangupBy string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var m []string
	for {
		all := callEnded.FindAllStringSubmatch(o.srv.logs(), -1)
		if len(all) >= n {
			m = all[n-1]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d \"call ended\" lines with media counts, want %d:\n%s", len(all), n, o.srv.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	caller, _ := strconv.Atoi(m[4])
	callee, _ := strconv.Atoi(m[5])
	t.Logf("PBX: %s", m[0])
	if m[1] != "200" || m[2] != "answered" || m[3] != hangupBy || caller < 25 || callee < 25 {
		t.Errorf("PBX logged %q; want status=200 disposition=answered hangup_by=%s and at least 25 RTP packets relayed from each side", m[0], hangupBy)
	}
}

// cdrRow is one line of "officepbx cdr list".
type cdrRow struct{ caller, callee, disposition, status, hangupBy string }

// cdrs waits until "officepbx cdr list" shows n records (the PBX writes the record just after it
// logs the call's end) and returns them, newest first.
func (o *office) cdrs(t *testing.T, n int) []cdrRow {
	t.Helper()
	var rows []cdrRow
	for _, r := range o.cdrRecords(t, n) {
		rows = append(rows, cdrRow{caller: r["CALLER"], callee: r["CALLEE"], disposition: r["DISPOSITION"],
			status: r["STATUS"], hangupBy: r["HANGUP-BY"]})
	}
	return rows
}

// cdrRecords waits until "officepbx cdr list" shows n records and returns them, newest first,
// each as its columns by header name (START, CALLER, DIALLED, CALLEE, ..., SEGMENTS, REASON).
func (o *office) cdrRecords(t *testing.T, n int) []map[string]string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		out := cli(t, "cdr", "list", "--db", o.dsn)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if !strings.HasPrefix(lines[0], "START") {
			t.Fatalf("cdr list:\n%s", out)
		}
		cols := regexp.MustCompile(`\s{2,}`)
		names := cols.Split(strings.TrimSpace(lines[0]), -1) // by header name: the list may gain columns
		var rows []map[string]string
		for _, l := range lines[1:] {
			f := cols.Split(strings.TrimSpace(l), -1)
			if len(f) < len(names)-1 { // REASON may be empty
				t.Fatalf("cdr list line %q", l)
			}
			r := map[string]string{}
			for i, v := range f {
				if i < len(names) {
					r[names[i]] = v
				}
			}
			rows = append(rows, r)
		}
		if len(rows) >= n || time.Now().After(deadline) {
			if len(rows) != n {
				t.Fatalf("cdr list shows %d records, want %d:\n%s", len(rows), n, out)
			}
			t.Logf("officepbx cdr list:\n%s", out)
			return rows
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBaresipCallUDP: two baresip phones register over UDP with the default digest settings; 101
// calls 102, which answers by itself; each side receives the other's tone through the PBX's
// relay; 101 hangs up; the call record says answered, hung up by the caller.
func TestBaresipCallUDP(t *testing.T) {
	o := startOffice(t, "udp", "101", "102")
	a, b := o.phones["101"], o.phones["102"]
	o.call(t, a, b, a)
	o.checkCallEnded(t, 1, "caller")
	rows := o.cdrs(t, 1)
	if r := rows[0]; r != (cdrRow{"101", "102", "answered", "200", "caller"}) {
		t.Errorf("call record %+v, want 101 -> 102 answered 200, hung up by the caller", r)
	}
}

// TestBaresipCallTCP: the same with both phones over TCP (account URI ;transport=tcp), twice:
// first the caller hangs up, then the callee. Every SIP message of both phones, in particular
// the ACK and BYE each phone sends to the PBX and those it receives from the PBX, must travel
// over TCP. baresip's SIP trace (-s) records the transport each message was sent or received
// on; the phones and the PBX share the loopback, so what a phone sent is what the PBX got.
func TestBaresipCallTCP(t *testing.T) {
	o := startOffice(t, "tcp", "101", "102")
	a, b := o.phones["101"], o.phones["102"]
	o.call(t, a, b, a) // the caller sends ACK and BYE; the PBX sends ACK and BYE to the callee
	o.checkCallEnded(t, 1, "caller")
	o.call(t, a, b, b) // the callee sends BYE; the PBX sends BYE to the caller
	o.checkCallEnded(t, 2, "callee")
	rows := o.cdrs(t, 2)
	if rows[0] != (cdrRow{"101", "102", "answered", "200", "callee"}) || rows[1] != (cdrRow{"101", "102", "answered", "200", "caller"}) {
		t.Errorf("call records %+v, want two answered 101 -> 102 calls, hung up by the caller, then by the callee", rows)
	}

	a.stop() // flushes the SIP traces
	b.stop()
	// The in-dialog requests each phone must have sent to and received from the PBX in the two
	// calls (so that the transport check below cannot pass on a trace that lacks them).
	want := []struct {
		p      *phone
		sent   bool
		method string
		n      int
	}{
		{a, true, "ACK", 2}, {a, true, "BYE", 1}, {a, false, "BYE", 1},
		{b, false, "ACK", 2}, {b, false, "BYE", 1}, {b, true, "BYE", 1},
	}
	traces := map[*phone][]sipMessage{a: a.trace(), b: b.trace()}
	for _, w := range want {
		var seen []sipMessage
		for _, m := range traces[w.p] {
			// ACKs of the PBX's 407 challenge to the caller's first INVITE are not in-dialog.
			if m.Sent == w.sent && m.isRequest(w.method) && (w.method != "ACK" || acksAnswer(traces[w.p], m)) {
				seen = append(seen, m)
			}
		}
		if len(seen) != w.n {
			dir := map[bool]string{true: "sent to", false: "received from"}[w.sent]
			t.Errorf("phone %s %s the PBX %d %s requests, want %d: %v", w.p.spec.Ext, dir, len(seen), w.method, w.n, seen)
		}
	}
	// Both accounts are TCP: no message of either phone may go over UDP.
	for _, p := range []*phone{a, b} {
		var bad []string
		for _, m := range traces[p] {
			if m.Transport != "TCP" {
				bad = append(bad, m.String())
			}
		}
		if len(bad) > 0 {
			t.Errorf("phone %s (TCP account) %d messages not over TCP:\n  %s\nthe Contact the PBX gave it: %s",
				p.spec.Ext, len(bad), strings.Join(bad, "\n  "), strings.Join(pbxContacts(traces[p]), ", "))
		}
	}
}

// acksAnswer reports whether ack acknowledges a 2xx answer to an INVITE in the trace: it has the
// Call-ID and CSeq number of one.
func acksAnswer(trace []sipMessage, ack sipMessage) bool {
	for _, m := range trace {
		if m.Method == "INVITE" && strings.HasPrefix(m.StartLine, "SIP/2.0 2") &&
			m.header("Call-ID") == ack.header("Call-ID") && m.cseqNum() == ack.cseqNum() {
			return true
		}
	}
	return false
}

// pbxContacts returns the distinct Contact headers of the INVITEs and the 2xx answers to INVITEs
// the phone received from the PBX: where the phone sends its in-dialog requests.
func pbxContacts(trace []sipMessage) []string {
	var out []string
	seen := map[string]bool{}
	for _, m := range trace {
		if !m.Sent && m.Method == "INVITE" && (m.isRequest("INVITE") || strings.HasPrefix(m.StartLine, "SIP/2.0 2")) {
			for _, c := range m.headers("Contact") {
				what := "INVITE"
				if !m.isRequest("INVITE") {
					what = strings.TrimPrefix(m.StartLine, "SIP/2.0 ") + " to the INVITE"
				}
				if k := what + c; !seen[k] {
					seen[k] = true
					out = append(out, fmt.Sprintf("%q in the PBX's %s", c, what))
				}
			}
		}
	}
	return out
}

// TestBaresipThreePhones: three phones register; 101 calls 103 and only 103 rings (102 sees no
// call), both sides hear each other. The three-phone set-up is what an attended-transfer test
// needs.
func TestBaresipThreePhones(t *testing.T) {
	o := startOffice(t, "udp", "101", "102", "103")
	list := cli(t, "ext", "list", "--db", o.dsn)
	for _, ext := range []string{"101", "102", "103"} {
		if !regexp.MustCompile(`(?m)^` + ext + `\s+Phone ` + ext + `\s.*\ssip:[^,\s]+\s*$`).MatchString(list) {
			t.Errorf("ext list does not show %s with one contact:\n%s", ext, list)
		}
	}
	a, b, c := o.phones["101"], o.phones["102"], o.phones["103"]
	o.call(t, a, c, c)
	o.checkCallEnded(t, 1, "callee")
	for _, ev := range b.allEvents() {
		if ev.Class == "call" {
			t.Errorf("102 saw a call meant for 103: %v", ev)
		}
	}
	if rows := o.cdrs(t, 1); rows[0] != (cdrRow{"101", "103", "answered", "200", "callee"}) {
		t.Errorf("call record %+v, want 101 -> 103 answered 200, hung up by the callee", rows[0])
	}
}
