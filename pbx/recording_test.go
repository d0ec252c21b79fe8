package pbx_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/go-audio/wav"

	"github.com/pbxkit/pbxkit/internal/audiotest"
	"github.com/pbxkit/pbxkit/media"
	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// talk makes the caller's phone send a 440 Hz tone and the callee's a 1000 Hz one, as PCMU RTP
// paced at 20 ms, to the PBX's ports facing them, until the returned function is called.
func talk(a, b *rtpPhone, pa, pb int) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, s := range []struct {
		p    *rtpPhone
		port int
		freq float64
	}{{a, pa, 440}, {b, pb, 1000}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(s.port))
			_ = media.Play(ctx, s.p.conn, dst, 0, media.Tone(media.PCMU, 0, 0, s.freq))
		}()
	}
	return func() { cancel(); wg.Wait() }
}

// checkRecording reads a call's recording and checks it: in dir, a stereo 8 kHz 16-bit WAV at
// least min long, the caller's 440 Hz tone on the left and the callee's 1000 Hz on the right.
func checkRecording(t *testing.T, path, dir string, min time.Duration) {
	t.Helper()
	if filepath.Dir(path) != dir || !strings.HasSuffix(path, ".wav") {
		t.Fatalf("recording %q is not a WAV file in %s", path, dir)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := wav.NewDecoder(f)
	buf, err := d.FullPCMBuffer()
	if err != nil {
		t.Fatal(err)
	}
	if d.NumChans != 2 || d.SampleRate != 8000 || d.BitDepth != 16 {
		t.Fatalf("%d channels at %d Hz, %d bits; want 2, 8000, 16", d.NumChans, d.SampleRate, d.BitDepth)
	}
	var left, right []int16
	for i := 0; i+1 < len(buf.Data); i += 2 {
		left, right = append(left, int16(buf.Data[i])), append(right, int16(buf.Data[i+1]))
	}
	if got := time.Duration(len(left)) * time.Second / 8000; got < min {
		t.Fatalf("recording lasts %v, want at least %v", got, min)
	}
	tail := len(left) - 4000 // the last half second: both sides were talking
	for _, ch := range []struct {
		name        string
		s           []int16
		want, other float64
	}{{"left (caller)", left[tail:], 440, 1000}, {"right (callee)", right[tail:], 1000, 440}} {
		pw, po := audiotest.Goertzel(ch.s, 8000, ch.want), audiotest.Goertzel(ch.s, 8000, ch.other)
		if pw < 1e5 || pw < 20*po {
			t.Errorf("%s: power %.0f at %v Hz, %.0f at %v Hz", ch.name, pw, ch.want, po, ch.other)
		}
	}
}

// TestRecordingByExtensionSetting: a call to an extension with recording on is recorded by
// default routing from the answer to the hang-up, and its record names the file.
func TestRecordingByExtensionSetting(t *testing.T) {
	dir := t.TempDir()
	tp, caller, callee := mediaPBX(t, pbx.Config{RecordingsDir: dir})
	on := true
	if _, err := tp.store.UpdateExtension(context.Background(), "200", store.ExtensionPatch{Record: &on}); err != nil {
		t.Fatal(err)
	}
	a, b := newRTPPhone(t), newRTPPhone(t)
	inv, ok, pa, pb := mediaCall(t, caller, callee, a.sdp(""), b.sdp(""))
	stop := talk(a, b, pa, pb)
	time.Sleep(1500 * time.Millisecond)
	hangUp(t, tp, caller, callee, inv, ok, 2)
	stop()
	cdr := lastCDR(t, tp, inv.CallID().Value())
	checkRecording(t, cdr.Recording, dir, time.Second)
}

// TestRecordingNotByDefault: an extension without the setting is not recorded.
func TestRecordingNotByDefault(t *testing.T) {
	dir := t.TempDir()
	tp, caller, callee := mediaPBX(t, pbx.Config{RecordingsDir: dir})
	a, b := newRTPPhone(t), newRTPPhone(t)
	inv, ok, _, _ := mediaCall(t, caller, callee, a.sdp(""), b.sdp(""))
	hangUp(t, tp, caller, callee, inv, ok, 2)
	if cdr := lastCDR(t, tp, inv.CallID().Value()); cdr.Recording != "" {
		t.Fatalf("record names recording %q", cdr.Recording)
	}
	if files, _ := os.ReadDir(dir); len(files) != 0 {
		t.Fatalf("recordings folder holds %v", files)
	}
}

// TestRecordingStartStopOnALiveCall: the PBX starts and stops recording an answered call by its
// ID (what the admin API does); a second start makes a second file, and the record names both.
func TestRecordingStartStopOnALiveCall(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec") // created with the first recording
	tp, caller, callee := mediaPBX(t, pbx.Config{RecordingsDir: dir})
	a, b := newRTPPhone(t), newRTPPhone(t)
	inv, ok, pa, pb := mediaCall(t, caller, callee, a.sdp(""), b.sdp(""))
	id := inv.CallID().Value()
	stop := talk(a, b, pa, pb)
	defer stop()
	first, err := tp.StartRecording(id)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1200 * time.Millisecond)
	if got, err := tp.StopRecording(id); err != nil || got != first {
		t.Fatalf("stop: %q %v, want %q", got, err, first)
	}
	checkRecording(t, first, dir, time.Second)
	time.Sleep(5 * time.Millisecond) // the second file's name has the time to the millisecond
	second, err := tp.StartRecording(id)
	if err != nil || second == first {
		t.Fatalf("second start: %q %v", second, err)
	}
	time.Sleep(1200 * time.Millisecond)
	hangUp(t, tp, caller, callee, inv, ok, 2)
	checkRecording(t, second, dir, time.Second) // completed by the hang-up
	cdr := lastCDR(t, tp, id)
	if cdr.Recording != first+"\n"+second {
		t.Fatalf("record names %q, want both files", cdr.Recording)
	}
}

// TestLuaRecordCall: call:record_call() before call:connect records the call from the answer.
func TestLuaRecordCall(t *testing.T) {
	dir := t.TempDir()
	lo := freeEvenRange(t, 8)
	script := `function route(call)
  local path, err = call:record_call()
  if not path then return call:reject(500, err) end
  call:set("recording", path)
  call:connect("200")
end
function on_hangup(call, cdr)
  pbx.log("info", "recorded", "same", tostring(cdr.recordings[1] == call:get("recording")), "files", #cdr.recordings)
end`
	tp, caller, callees, _ := luaPBX(t, script, pbx.Config{RTPPortMin: lo, RTPPortMax: lo + 7, RecordingsDir: dir}, 1)
	a, b := newRTPPhone(t), newRTPPhone(t)
	inv, ok, pa, pb := mediaCall(t, caller, callees[0], a.sdp(""), b.sdp(""))
	stop := talk(a, b, pa, pb)
	time.Sleep(1500 * time.Millisecond)
	hangUp(t, tp, caller, callees[0], inv, ok, 2)
	stop()
	cdr := lastCDR(t, tp, inv.CallID().Value())
	checkRecording(t, cdr.Recording, dir, time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(tp.logs.String(), "same=true files=1") {
		if time.Now().After(deadline) {
			t.Fatalf("on_hangup's record does not name the file record_call returned:\n%s", tp.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLuaRecordCallRefused: without a media relay there is nothing to record: record_call
// returns nil and why, and the script goes on.
func TestLuaRecordCallRefused(t *testing.T) {
	script := `function route(call)
  local path, err = call:record_call()
  if path or not string.find(err, "no media relay") then return call:reject(500) end
  return call:reject(480, "Not Recorded")
end`
	_, caller, _, _ := luaPBX(t, script, pbx.Config{RecordingsDir: t.TempDir()}, 1)
	_, rs := dial(t, caller, "200")
	if res := final(rs); res.StatusCode != 480 || res.Reason != "Not Recorded" {
		t.Fatalf("final %d %s", res.StatusCode, res.Reason)
	}
}

// TestRecordingByCallerExtension: a call from an extension with recording on (the caller
// authenticated as it) is recorded, whoever it calls.
func TestRecordingByCallerExtension(t *testing.T) {
	dir := t.TempDir()
	lo := freeEvenRange(t, 8)
	tp := startPBX(t, pbx.Config{RTPPortMin: lo, RTPPortMax: lo + 7, RecordingsDir: dir})
	ctx := context.Background()
	tp.addExt(t, "100", "pw100-secret")
	tp.addExt(t, "200", "pw200-secret")
	on := true
	if _, err := tp.store.UpdateExtension(ctx, "100", store.ExtensionPatch{Record: &on}); err != nil {
		t.Fatal(err)
	}
	caller, callee := newClient(t, tp.addr), newClient(t, tp.addr)
	if err := tp.store.PutBinding(ctx, store.Binding{Extension: "200", Contact: "sip:200@" + callee.Addr(),
		Source: callee.Addr(), Transport: "udp", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	a, b := newRTPPhone(t), newRTPPhone(t)
	r := reqSpec{Method: "INVITE", From: "100", To: "200", CallID: "rec-auth-1@test", CSeq: 1,
		Headers: []string{"Contact: <sip:100@" + caller.Addr() + ">", "Content-Type: application/sdp"}, Body: a.sdp("")}
	msg := caller.Build(r)
	first, _ := sip.ParseMessage([]byte(msg))
	chal := caller.Do(msg)
	if chal.StatusCode != 407 {
		t.Fatalf("unauthenticated INVITE: %d, want 407", chal.StatusCode)
	}
	caller.AckFinal(first.(*sip.Request), chal)
	r.CSeq = 2
	r.Headers = append(r.Headers, authorize(t, chal, r, "100", "pw100-secret", "MD5"))
	msg = caller.Build(r)
	m, err := sip.ParseMessage([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	inv := m.(*sip.Request)
	caller.Send(msg)
	bInv := callee.WaitRequest(sip.INVITE)
	pb := sdpPort(t, bInv.Body())
	callee.Respond(bInv, 200, "OK", b.sdp(""))
	ok := caller.WaitResponse(200)
	pa := sdpPort(t, ok.Body())
	caller.Send(caller.InDialog("ACK", inv, ok, 2))
	stop := talk(a, b, pa, pb)
	time.Sleep(1500 * time.Millisecond)
	hangUp(t, tp, caller, callee, inv, ok, 3)
	stop()
	checkRecording(t, lastCDR(t, tp, inv.CallID().Value()).Recording, dir, time.Second)
}
