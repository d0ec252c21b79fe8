package test

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/internal/audiotest"
	"github.com/pbxkit/pbxkit/media"
)

// TestBaresipLeavesVoicemail: a real softphone (baresip, 101) calls 102, which has voicemail on
// and no phone registered; the PBX answers with the greeting and the beep, records 101's tone
// until 101 hangs up, and officepbx vm list shows the message, whose WAV holds 101's tone. By
// default routing, and by the shipped office dialplan (call:voicemail).
func TestBaresipLeavesVoicemail(t *testing.T) {
	shipped, err := filepath.Abs(filepath.Join("..", "examples", "officepbx", "dialplan.lua"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, dialplan string }{{"default routing", ""}, {"shipped dialplan", shipped}} {
		t.Run(c.name, func(t *testing.T) { leaveVoicemail(t, "--dialplan", c.dialplan) })
	}
}

// leaveVoicemail is TestBaresipLeavesVoicemail with serve's arguments.
func leaveVoicemail(t *testing.T, serveArgs ...string) {
	o := startOfficeWith(t, "udp", []string{"101", "102"}, []string{"101"}, serveArgs...)
	cli(t, "ext", "set", "102", "--voicemail", "on", "--pin", "2468", "--db", o.dsn)
	caller := o.phones["101"]
	caller.dial("102")
	if ev := caller.await(10*time.Second, "CALL_ESTABLISHED", "CALL_CLOSED"); ev.Type != "CALL_ESTABLISHED" {
		t.Fatalf("101: %v, want its call answered by voicemail\nPBX log:\n%s", ev, o.srv.logs())
	}
	caller.awaitAudio(2, 15*time.Second) // the greeting and the beep, then the recording runs
	time.Sleep(2 * time.Second)          // what 101 says
	caller.hangup()
	caller.await(10*time.Second, "CALL_CLOSED")

	row := regexp.MustCompile(`(?m)^102\s+(\d+)\s+new\s+\S+ \S+\s+(\d+)\s+101\s+.*\s(\S+\.wav)$`)
	var m []string
	for deadline := time.Now().Add(10 * time.Second); m == nil; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no message for 102 in vm list:\n%s\nPBX log:\n%s", cli(t, "vm", "list", "--db", o.dsn), o.srv.logs())
		}
		m = row.FindStringSubmatch(cli(t, "vm", "list", "102", "--db", o.dsn))
	}
	t.Logf("vm list: %s", m[0])
	s, err := media.LoadSamples(m[3])
	if err != nil {
		t.Fatal(err)
	}
	var pcm []int16
	for frame := make([]int16, 160); s.Samples(frame); {
		pcm = append(pcm, frame...)
	}
	secs := float64(len(pcm)) / 8000
	hz := float64(tones["101"])
	if g, other := audiotest.Goertzel(pcm, 8000, hz), audiotest.Goertzel(pcm, 8000, 1000); secs < 1.5 || g < 1e4 || g < 50*other {
		t.Fatalf("message of %.2fs with power %.0f at %v Hz, %.0f at 1000 Hz; want 101's tone for 1.5s or more", secs, g, hz, other)
	}
	if !strings.Contains(o.srv.logs(), `msg="voicemail left"`) {
		t.Errorf("no voicemail line in the PBX log")
	}
	if loaded := strings.Contains(o.srv.logs(), `msg="dialplan loaded"`); loaded != (serveArgs[1] != "") {
		t.Errorf("dialplan loaded: %v, want %v", loaded, serveArgs[1] != "")
	}
	out := cli(t, "vm", "rm", "102", m[1], "--db", o.dsn)
	if want := fmt.Sprintf("message %s of mailbox 102 removed", m[1]); !strings.Contains(out, want) {
		t.Fatalf("vm rm: %q", out)
	}
}
