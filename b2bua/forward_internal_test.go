package b2bua

import (
	"strings"
	"testing"
)

// TestForwardingHistory: the Diversion and History-Info headers of a chain of forwards, and the
// loop and hop checks.
func TestForwardingHistory(t *testing.T) {
	var f forwarding
	for _, hop := range []struct{ dest, reason string }{
		{"102", "unconditional"}, {"sip:alice@example.com;transport=tcp", "user-busy"}, {"103", "no-answer"},
	} {
		if _, err := f.add("101", strings.ToLower(hop.dest), hop.dest, hop.reason); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, h := range f.headers("101", "pbx.test") {
		got = append(got, h.Name()+": "+h.Value())
	}
	want := []string{
		"Diversion: <sip:alice@example.com;transport=tcp>;reason=no-answer;counter=1",
		"Diversion: <sip:102@pbx.test>;reason=user-busy;counter=1",
		"Diversion: <sip:101@pbx.test>;reason=unconditional;counter=1",
		"History-Info: <sip:101@pbx.test?Reason=SIP%3Bcause%3D302>;index=1,<sip:102@pbx.test;cause=302?Reason=SIP%3Bcause%3D486>;index=1.1;mp=1," +
			"<sip:alice@example.com;transport=tcp;cause=486?Reason=SIP%3Bcause%3D408>;index=1.1.1;mp=1.1,<sip:103@pbx.test;cause=408>;index=1.1.1.1;mp=1.1.1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, dest := range []string{"101", "102", "103"} {
		if _, err := f.add("101", dest, dest, "unconditional"); err == nil || err.Code != 482 {
			t.Fatalf("forward back to %s: %v, want 482", dest, err)
		}
	}
	f.add("101", "104", "104", "unconditional")
	f.add("101", "105", "105", "unconditional")
	if _, err := f.add("101", "106", "106", "unconditional"); err == nil || err.Code != 483 {
		t.Fatalf("sixth forward: %v, want 483", err)
	}
}

func TestCauseOf(t *testing.T) {
	for reason, cause := range map[string]int{"unconditional": 302, "user-busy": 486, "do-not-disturb": 486,
		"no-answer": 408, "unavailable": 480, "time-of-day": 404, "": 404} {
		if got := causeOf(reason); got != cause {
			t.Errorf("cause of %q: %d, want %d", reason, got, cause)
		}
	}
}
