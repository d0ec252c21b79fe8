package b2bua

import (
	"strings"
	"testing"
)

func originOf(t *testing.T, sdp []byte) []string {
	t.Helper()
	for _, l := range strings.Split(string(sdp), "\r\n") {
		if strings.HasPrefix(l, "o=") {
			return strings.Fields(strings.TrimPrefix(l, "o="))
		}
	}
	t.Fatalf("no o= line in %q", sdp)
	return nil
}

// TestOriginKeptPerDialog: whoever's description the PBX passes on, the dialog sees one origin:
// the same username and session id, the version one higher when the description changes and
// the same when it does not; the address and everything else stay as given.
func TestOriginKeptPerDialog(t *testing.T) {
	a := "v=0\r\no=alice 111 5 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
	aHold := strings.Replace(a, "t=0 0\r\n", "t=0 0\r\na=sendonly\r\n", 1)
	aHold = strings.Replace(aHold, "alice 111 5", "alice 111 6", 1)
	b := "v=0\r\no=bob 999 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\n"
	var o origin
	first := originOf(t, o.stamp([]byte(a)))
	again := originOf(t, o.stamp([]byte(a)))
	held := o.stamp([]byte(aHold))
	other := originOf(t, o.stamp([]byte(b)))
	if first[0] != "pbxkit" || first[4] != "IP4" || first[5] != "192.0.2.1" {
		t.Fatalf("first origin %v", first)
	}
	h := originOf(t, held)
	for _, got := range [][]string{again, h, other} {
		if got[0] != "pbxkit" || got[1] != first[1] {
			t.Fatalf("origin %v, want pbxkit with session id %s", got, first[1])
		}
	}
	version := func(f []string) string { return f[2] }
	if version(again) != version(first) {
		t.Fatalf("the same description got a new version: %v then %v", first, again)
	}
	if version(h) == version(first) || version(other) == version(h) {
		t.Fatalf("a changed description kept its version: %v, %v, %v", first, h, other)
	}
	if other[5] != "192.0.2.9" || !strings.Contains(string(held), "a=sendonly\r\n") {
		t.Fatalf("address or attributes changed: %v %q", other, held)
	}
	if got := o.stamp([]byte("Signal=5\r\n")); string(got) != "Signal=5\r\n" {
		t.Fatalf("a body without o= changed: %q", got)
	}
}
