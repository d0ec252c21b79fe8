package admin_test

import (
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/pbx"
)

// relayPorts returns the first of n free UDP ports on 127.0.0.1 for the media relay, apart
// from the ranges the media and pbx packages' tests use.
func relayPorts(t *testing.T, n int) int {
	t.Helper()
	for base := 24000; base < 26000; base += 64 {
		ok := true
		for p := base; p < base+n && ok; p++ {
			c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
			if err != nil {
				ok = false
				continue
			}
			c.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

// recordingPath is the path of a start or stop answer.
func recordingPath(t *testing.T, body string) string {
	t.Helper()
	var v struct {
		CallID string `json:"call_id"`
		Path   string `json:"path"`
	}
	decode(t, body, &v)
	if v.Path == "" || v.CallID == "" {
		t.Fatalf("no path or call id in %s", body)
	}
	return v.Path
}

// TestCallRecordingAPI: POST starts recording a live call (201 and the file), a second POST is
// 409; DELETE stops it (200 and the same file, a valid WAV), a second DELETE 409; an unknown call
// is 404 both ways. The calls list shows the recording, the event stream its start and stop, and
// the call's record names the file.
func TestCallRecordingAPI(t *testing.T) {
	dir := t.TempDir()
	lo := relayPorts(t, 8)
	e := start(t, pbx.Config{RTPPortMin: lo, RTPPortMax: lo + 7, RecordingsDir: dir})
	sub := e.pbx.Subscribe(64)
	defer sub.Close()
	caller, callee := e.phones(t)
	inv, ok, _ := b2buatest.AnsweredCall(t, caller, callee)
	id := inv.CallID().Value()
	rec := "/api/calls/" + url.PathEscape(id) + "/recording"

	for _, m := range []string{"POST", "DELETE"} {
		if code, body := e.do(t, m, "/api/calls/nope/recording", ""); code != 404 {
			t.Fatalf("%s for an unknown call: %d %s", m, code, body)
		}
	}
	if code, body := e.do(t, "DELETE", rec, ""); code != 409 {
		t.Fatalf("stop before start: %d %s", code, body)
	}
	code, body := e.do(t, "POST", rec, "")
	if code != 201 {
		t.Fatalf("start: %d %s", code, body)
	}
	path := recordingPath(t, body)
	if filepath.Dir(path) != dir {
		t.Fatalf("recording %s is not in %s", path, dir)
	}
	if code, body := e.do(t, "POST", rec, ""); code != 409 {
		t.Fatalf("second start: %d %s", code, body)
	}
	_, body = e.do(t, "GET", "/api/calls", "")
	var calls []struct{ Recording string }
	decode(t, body, &calls)
	if len(calls) != 1 || calls[0].Recording != path {
		t.Fatalf("calls list: %s", body)
	}
	time.Sleep(100 * time.Millisecond)
	code, body = e.do(t, "DELETE", rec, "")
	if code != 200 || recordingPath(t, body) != path {
		t.Fatalf("stop: %d %s", code, body)
	}
	if code, body := e.do(t, "DELETE", rec, ""); code != 409 {
		t.Fatalf("second stop: %d %s", code, body)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() < 44 {
		t.Fatalf("recording file: %v %v", fi, err)
	}
	b2buatest.HangUp(t, caller, callee, inv, ok, 2)
	e.waitCalls(t, 0)

	var kinds []string
	for len(kinds) < 3 {
		select {
		case ev := <-sub.C:
			if strings.HasPrefix(ev.Kind, "call.recording") || ev.Kind == "call.ended" {
				if ev.Kind != "call.ended" && ev.Path != path {
					t.Fatalf("%s names %q", ev.Kind, ev.Path)
				}
				kinds = append(kinds, ev.Kind)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("events so far %v", kinds)
		}
	}
	if strings.Join(kinds, " ") != "call.recording_started call.recording_stopped call.ended" {
		t.Fatalf("events %v", kinds)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, body = e.do(t, "GET", "/api/cdrs?ext=200", "")
		var page struct {
			Items []struct {
				CallID    string `json:"call_id"`
				Recording string `json:"recording"`
			} `json:"items"`
		}
		decode(t, body, &page)
		cdrs := page.Items
		if len(cdrs) == 1 {
			if cdrs[0].CallID != id || cdrs[0].Recording != path {
				t.Fatalf("record: %s", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no record: %s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCallRecordingRefused: a call the PBX relays no media for, and a G.722 call, cannot be
// recorded: 422, and the call goes on.
func TestCallRecordingRefused(t *testing.T) {
	t.Run("no relay", func(t *testing.T) {
		e := start(t, pbx.Config{RecordingsDir: t.TempDir()})
		caller, callee := e.phones(t)
		inv, ok, _ := b2buatest.AnsweredCall(t, caller, callee)
		code, body := e.do(t, "POST", "/api/calls/"+url.PathEscape(inv.CallID().Value())+"/recording", "")
		if code != 422 || !strings.Contains(errorOf(t, body), "no media") {
			t.Fatalf("start: %d %s", code, body)
		}
		b2buatest.HangUp(t, caller, callee, inv, ok, 2)
	})
	t.Run("G.722", func(t *testing.T) {
		lo := relayPorts(t, 8)
		e := start(t, pbx.Config{RTPPortMin: lo, RTPPortMax: lo + 7, RecordingsDir: t.TempDir()})
		caller, callee := e.phones(t)
		g722 := strings.Replace(b2buatest.SDP, "RTP/AVP 0", "RTP/AVP 9", 1)
		msg, inv := caller.Invite("100", "200", nil, g722)
		caller.Send(msg)
		bInv := callee.WaitRequest(sip.INVITE)
		callee.Respond(bInv, 200, "OK", strings.Replace(b2buatest.CalleeSDP, "RTP/AVP 0", "RTP/AVP 9", 1))
		ok := caller.WaitResponse(200)
		callee.WaitRequest(sip.ACK)
		caller.Send(caller.InDialog("ACK", inv, ok, 1))
		code, body := e.do(t, "POST", "/api/calls/"+url.PathEscape(inv.CallID().Value())+"/recording", "")
		if code != 422 || !strings.Contains(errorOf(t, body), "G722") {
			t.Fatalf("start: %d %s", code, body)
		}
		if !strings.Contains(e.logs.String(), "call not recorded") {
			t.Fatal("no log line says why the call is not recorded")
		}
		b2buatest.HangUp(t, caller, callee, inv, ok, 2)
		e.waitCalls(t, 0)
	})
}

// TestExtensionRecordSetting: record is an extension field of POST, PATCH and GET.
func TestExtensionRecordSetting(t *testing.T) {
	e := start(t, pbx.Config{})
	code, body := e.do(t, "POST", "/api/extensions", `{"number":"301","password":"secret-301","record":true}`)
	if code != 201 || !strings.Contains(body, `"record": true`) {
		t.Fatalf("create: %d %s", code, body)
	}
	code, body = e.do(t, "PATCH", "/api/extensions/301", `{"record":false}`)
	if code != 200 || !strings.Contains(body, `"record": false`) {
		t.Fatalf("patch: %d %s", code, body)
	}
	if x, err := e.store.Extension(context.Background(), "301"); err != nil || x.Record {
		t.Fatalf("stored: %v %+v", err, x)
	}
}
