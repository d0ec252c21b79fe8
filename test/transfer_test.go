package test

// Attended transfer with real phones. 101 and 102 are linphonec: 102, the transferor, because
// baresip 1.0 has blind transfer only (its menu's "transfer" sends REFER to a URI, with no way to
// name a dialog for Replaces), and 101, the transferee, because the transferee is put on hold and
// baresip 1.0 stops dumping the audio it decodes after a hold (audio_decoder_set flushes the
// receive filters, sndfile among them, and does not set them up again), so its ears could not be
// checked after the transfer. 103, the transfer target, is baresip. Each phone sends a tone of its
// own; 101 and 103 record what they receive.

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestAttendedTransfer: 101 calls 102, 102 answers and holds 101, calls 103 (who answers by
// itself), then transfers 101 to 103: REFER in the first call whose Refer-To names 103 with
// Replaces for 102's dialog of the second call (RFC 3891). The PBX joins 101 and 103 itself:
// afterwards they hear each other's tone (and no longer 102's), 102 is told the transfer worked
// and has no call left, nothing else rang, the first call's record names all three (segments
// 101>102 then 101>103) and the consultation call has a record of its own. Over UDP, then TCP.
func TestAttendedTransfer(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) { testAttendedTransfer(t, transport) })
	}
}

func testAttendedTransfer(t *testing.T, transport string) {
	linphonecBin(t) // skip (or fail under CI) before starting anything
	o := startOfficeWith(t, transport, []string{"101", "102", "103"}, []string{"103"})
	c := o.phones["103"]
	a := startLinphone(t, o.srv.addr, phoneSpec{Ext: "101", Password: "pw101", Transport: transport, ToneHz: tones["101"]})
	b := startLinphone(t, o.srv.addr, phoneSpec{Ext: "102", Password: "pw102", Transport: transport, ToneHz: tones["102"]})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("PBX log:\n%s\n101 (linphonec) printed:\n%s\n102 (linphonec) printed:\n%s", o.srv.logs(), a.output(), b.output())
		}
	})
	const wait = 10 * time.Second

	// 101 calls 102; 102 answers; 101 hears 102's tone.
	a.send("call 102")
	ax := a.callID(wait, false)
	x := b.callID(wait, true)
	b.send("answer " + x)
	b.awaitCall(wait, x, "connected.")
	a.awaitCall(wait, ax, "connected.")
	a.awaitTone(tones["102"], 0.5, wait)

	// 102 holds 101 and calls 103, who answers by itself and hears 102.
	b.send("pause " + x)
	b.awaitCall(wait, x, "is now paused.")
	b.send("call 103")
	y := b.callID(wait, false)
	b.awaitCall(wait, y, "connected.")
	if ev := c.await(wait, "CALL_ESTABLISHED", "CALL_CLOSED"); ev.Type != "CALL_ESTABLISHED" || ev.Direction != "incoming" {
		t.Fatalf("103: %v, want an incoming call established", ev)
	}
	c.awaitTone(tones["102"], 0.5, wait)

	// 102 transfers 101 to 103. The PBX re-INVITEs both, reports success to 102 (NOTIFY 200)
	// and hangs up both of 102's calls.
	b.send(fmt.Sprintf("transfer %s --to-call %s", x, y))
	b.await(wait, regexp.MustCompile(`^Performing attended transfer of call `+x+` to call `+y))
	ended := map[string]bool{}
	for len(ended) < 2 {
		m, ok := b.awaitOK(wait, regexp.MustCompile(`^Call (`+x+`|`+y+`) with .* ended`))
		if !ok {
			b.failf("calls ended after the transfer: %v, want %s and %s", ended, x, y)
		}
		ended[m[1]] = true
	}
	if !b.printed(regexp.MustCompile(`^The distant endpoint .* of call ` + x + ` has been transfered`)) {
		t.Errorf("102 was not told that the transfer succeeded (NOTIFY with SIP/2.0 200)")
	}
	a.awaitTone(tones["103"], 1, wait)
	c.awaitTone(tones["101"], 1, wait)
	b.send("calls")
	b.await(wait, regexp.MustCompile(`^No active call`))

	// 101 hangs up: the call ends on both sides.
	a.send("terminate")
	a.awaitCall(wait, ax, "ended")
	c.await(wait, "CALL_CLOSED")

	// Each side heard 102 first (before the hold, during the consultation), then the other,
	// and never 102 again once the other was heard; nobody heard themselves.
	heard := map[string][]int16{"101": a.decodedSoFar(), "103": c.receivedAudio()}
	for _, s := range []struct{ me, far string }{{"101", "103"}, {"103", "101"}} {
		samples := heard[s.me]
		mine, fromB, fromFar := toneFrames(samples, tones[s.me]), toneFrames(samples, tones["102"]), toneFrames(samples, tones[s.far])
		t.Logf("%s received %.2fs of audio: %s", s.me, float64(len(samples))/8000,
			toneTimeline(map[string][]bool{"102": fromB, s.far: fromFar, s.me: mine}))
		far, b2, own := toneSeconds(samples, tones[s.far]), toneSeconds(samples, tones["102"]), toneSeconds(samples, tones[s.me])
		if far < 0.9 || b2 < 0.4 || own > 0.1 {
			t.Errorf("%s received %.2fs of %s's tone (want at least 0.9s), %.2fs of 102's (want at least 0.4s) and %.2fs of its own (want none)",
				s.me, far, s.far, b2, own)
		}
		if first, last := firstTrue(fromFar), lastTrue(fromB); first >= 0 && last > first {
			t.Errorf("%s heard 102 at %.2fs, after %s's tone began at %.2fs", s.me, float64(last)*0.02, s.far, float64(first)*0.02)
		}
	}
	// Only the two calls: 103 had one call (it answers by itself), 101 none coming in.
	n := 0
	for _, ev := range c.allEvents() {
		if ev.Type == "CALL_ESTABLISHED" && ev.Direction == "incoming" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("103 had %d incoming calls, want one: %v", n, c.allEvents())
	}
	if strings.Contains(a.output(), "Receiving new incoming call") {
		t.Errorf("101 was rung:\n%s", a.output())
	}

	// Records: the first call names all three, the consultation call is a record of its own.
	rows := o.cdrRecords(t, 2)
	var first, consult map[string]string
	for _, r := range rows {
		switch r["CALLER"] {
		case "101":
			first = r
		case "102":
			consult = r
		}
	}
	segs := regexp.MustCompile(`^101>102:\d+s,101>103:\d+s$`)
	switch {
	case first == nil || consult == nil:
		t.Errorf("records %v: want one call from 101 and one from 102", rows)
	default:
		if first["DIALLED"] != "102" || first["CALLEE"] != "103" || first["DISPOSITION"] != "answered" ||
			first["HANGUP-BY"] != "caller" || !segs.MatchString(first["SEGMENTS"]) {
			t.Errorf("the transferred call's record %v: want 101 dialled 102, answered, callee 103, hung up by the caller, segments 101>102 then 101>103", first)
		}
		if consult["CALLEE"] != "103" || consult["DISPOSITION"] != "answered" {
			t.Errorf("the consultation call's record %v: want 102 -> 103 answered", consult)
		}
	}

	// Nothing left: every phone quits cleanly, the PBX logged two calls and none is up when
	// it stops.
	b.stop()
	a.stop()
	c.stop()
	o.srv.stop(t)
	logs := o.srv.logs()
	if n := len(callEnded.FindAllString(logs, -1)); n != 2 {
		t.Errorf("PBX logged %d ended calls, want 2:\n%s", n, logs)
	}
	if !strings.Contains(logs, `msg="call transferred"`) {
		t.Errorf("PBX logged no transfer:\n%s", logs)
	}
	if strings.Contains(logs, "still up at shutdown") || strings.Contains(logs, "still running at shutdown") {
		t.Errorf("PBX had calls left at shutdown:\n%s", logs)
	}

	// Every SIP message of every phone went over the transport it registered with: the REFER,
	// NOTIFYs, re-INVITEs and BYEs of the transfer too.
	want := strings.ToUpper(transport)
	for _, l := range []*linphone{a, b} {
		if n := l.transports(); len(n) != 1 || n[want] == 0 {
			t.Errorf("linphonec %s sent and received SIP messages over %v, want %s only", l.spec.Ext, n, want)
		}
	}
	var bad []string
	for _, m := range c.trace() {
		if m.Transport != want {
			bad = append(bad, m.String())
		}
	}
	if len(bad) > 0 {
		t.Errorf("103 (%s) %d messages not over %s:\n  %s", transport, len(bad), want, strings.Join(bad, "\n  "))
	}
	checkOrigins(t, "103", c.trace())
}

// checkOrigins: in each dialog, the session descriptions a phone received from the PBX keep one
// origin, the version growing (RFC 3264 §8), although a transfer put another phone behind the
// dialog.
func checkOrigins(t *testing.T, who string, msgs []sipMessage) {
	t.Helper()
	type seen struct {
		session string
		version int
	}
	last := map[string]seen{}
	for _, m := range msgs {
		_, body, _ := strings.Cut(m.Text, "\r\n\r\n")
		if m.Sent || !strings.Contains(body, "\no=") && !strings.HasPrefix(body, "o=") {
			continue
		}
		var f []string
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, "o=") {
				f = strings.Fields(strings.TrimPrefix(strings.TrimSpace(l), "o="))
				break
			}
		}
		if len(f) != 6 {
			continue
		}
		version, _ := strconv.Atoi(f[2])
		callID, session := m.header("Call-ID"), f[0]+" "+f[1]
		if prev, ok := last[callID]; ok && (prev.session != session || version < prev.version) {
			t.Errorf("%s's dialog %s: origin %q version %d after %q version %d (%s)", who, callID, session, version,
				prev.session, prev.version, m.StartLine)
		}
		last[callID] = seen{session, version}
	}
}

// toneTimeline says whose tone was heard when, as runs of 20 ms frames, e.g. "102 0.06-0.80s,
// 103 1.56-2.80s"; frames without any of the tones split runs.
func toneTimeline(frames map[string][]bool) string {
	n := 0
	for _, f := range frames {
		n = max(n, len(f))
	}
	var runs []string
	cur, start := "", 0
	for i := 0; i <= n; i++ {
		who := ""
		for name, f := range frames {
			if i < len(f) && f[i] {
				who = name
			}
		}
		if who == cur && i < n {
			continue
		}
		if cur != "" {
			runs = append(runs, fmt.Sprintf("%s %.2f-%.2fs", cur, float64(start)*0.02, float64(i)*0.02))
		}
		cur, start = who, i
	}
	if len(runs) == 0 {
		return "no tone"
	}
	return strings.Join(runs, ", ")
}

func firstTrue(f []bool) int {
	for i, v := range f {
		if v {
			return i
		}
	}
	return -1
}

func lastTrue(f []bool) int {
	for i := len(f) - 1; i >= 0; i-- {
		if f[i] {
			return i
		}
	}
	return -1
}
