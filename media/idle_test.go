package media

import (
	"sync"
	"testing"
	"time"
)

// testTimeout is the media timeout of these tests: long enough that a talking side, sending every
// 10 ms, is never taken for silent on a loaded machine running the race detector.
const testTimeout = 300 * time.Millisecond

// idleCall is a session whose sides described their media with the given extra SDP lines; it
// returns the session and the PBX's ports facing each side.
func idleCall(t *testing.T, a, b *endpoint, aExtra, bExtra string) (*Session, int, int) {
	t.Helper()
	r := newTestRelay(t, 2, Config{Timeout: testTimeout})
	return callSessionWith(t, r, a.sdp(aExtra), b.sdp(bExtra))
}

// talk sends RTP from e to port every 10 ms until the returned function is called.
func talk(e *endpoint, port int) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go streamFrom(e, port, "speech", done, &wg)
	return func() { close(done); wg.Wait() }
}

// waitIdle returns the silent side Idle names, or "" if Idle stays open for within.
func waitIdle(s *Session, within time.Duration) string {
	select {
	case <-s.Idle():
		return s.IdleSide()
	case <-time.After(within):
		return ""
	}
}

// One side silent while the other talks: the timeout names it.
func TestMediaTimeoutPerSide(t *testing.T) {
	for _, tc := range []struct {
		name       string
		callerTalk bool
		calleeTalk bool
		want       string
	}{
		{"callee dead", true, false, "callee"},
		{"caller dead", false, true, "caller"},
		{"both silent", false, false, "both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newEndpoint(t), newEndpoint(t)
			s, pa, pb := idleCall(t, a, b, "", "")
			if tc.callerTalk {
				defer talk(a, pa)()
			}
			if tc.calleeTalk {
				defer talk(b, pb)()
			}
			start := time.Now()
			if got := waitIdle(s, 3*time.Second); got != tc.want {
				t.Fatalf("silent side %q, want %q", got, tc.want)
			}
			if took := time.Since(start); took < testTimeout {
				t.Fatalf("timed out after %v, before the %v timeout", took, testTimeout)
			}
		})
	}
	t.Run("both talk", func(t *testing.T) {
		a, b := newEndpoint(t), newEndpoint(t)
		s, pa, pb := idleCall(t, a, b, "", "")
		defer talk(a, pa)()
		defer talk(b, pb)()
		if got := waitIdle(s, 4*testTimeout); got != "" {
			t.Fatalf("a call with both sides talking timed out (%q)", got)
		}
	})
}

// Hold, both ways: the held side must not send, the side that holds may send nothing; neither
// times out. A side that only listens (recvonly answer to sendrecv) may be silent, the other not.
func TestMediaTimeoutHold(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		callerSDP, calleeSDP string
		callerTalk           bool
		want                 string
	}{
		{"caller holds, no music", "a=sendonly\r\n", "a=recvonly\r\n", false, ""},
		{"caller holds with music", "a=sendonly\r\n", "a=recvonly\r\n", true, ""},
		{"callee holds", "a=recvonly\r\n", "a=sendonly\r\n", false, ""},
		{"both inactive", "a=inactive\r\n", "a=inactive\r\n", false, ""},
		{"callee only listens, caller talks", "", "a=recvonly\r\n", true, ""},
		{"callee only listens, caller dead", "", "a=recvonly\r\n", false, "caller"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newEndpoint(t), newEndpoint(t)
			s, pa, _ := idleCall(t, a, b, tc.callerSDP, tc.calleeSDP)
			if tc.callerTalk {
				defer talk(a, pa)()
			}
			wait := 4 * testTimeout
			if tc.want != "" {
				wait = 3 * time.Second
			}
			if got := waitIdle(s, wait); got != tc.want {
				t.Fatalf("silent side %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("old-style hold: c=0.0.0.0", func(t *testing.T) {
		b := newEndpoint(t)
		r := newTestRelay(t, 2, Config{Timeout: testTimeout})
		s, _, _ := callSessionWith(t, r, sdpAt("0.0.0.0:4000", ""), b.sdp(""))
		if got := waitIdle(s, 4*testTimeout); got != "" {
			t.Fatalf("a call held with c=0.0.0.0 timed out (%q)", got)
		}
	})
}

// Resumed from hold, a silent side times out again, counted from the resume; and a timeout that
// hit before a new description (a call ringing with early media past the timeout, then answered)
// is replaced by a fresh one.
func TestMediaTimeoutAfterResumeAndRearm(t *testing.T) {
	a, b := newEndpoint(t), newEndpoint(t)
	s, _, _ := idleCall(t, a, b, "a=sendonly\r\n", "a=recvonly\r\n")
	time.Sleep(3 * testTimeout) // held: longer than the timeout
	s.Rewrite(true, a.sdp(""))
	resumed := time.Now()
	s.Rewrite(false, b.sdp(""))
	if got := waitIdle(s, 3*time.Second); got != "both" {
		t.Fatalf("after the resume: silent side %q, want both", got)
	}
	if took := time.Since(resumed); took < testTimeout {
		t.Fatalf("timed out %v after the resume, sooner than the timeout", took)
	}
	fired := s.Idle()
	s.Rewrite(false, b.sdp("")) // a description after the timeout hit
	select {
	case <-s.Idle():
		t.Fatal("Idle still closed after a new description")
	default:
	}
	if s.IdleSide() != "" {
		t.Fatalf("IdleSide %q after a new description", s.IdleSide())
	}
	select {
	case <-fired:
	default:
		t.Fatal("the channel that fired was reopened")
	}
	if got := waitIdle(s, 3*time.Second); got != "both" {
		t.Fatalf("re-armed: silent side %q, want both", got)
	}
}

// An App attached to the caller is its other end: a caller that sends nothing is timed out even
// though no callee described anything, and one that talks is not.
func TestMediaTimeoutWithApp(t *testing.T) {
	for _, talking := range []bool{false, true} {
		name := "silent caller"
		if talking {
			name = "talking caller"
		}
		t.Run(name, func(t *testing.T) {
			r := newTestRelay(t, 2, Config{Timeout: testTimeout})
			s, err := r.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			a := newEndpoint(t)
			if _, err := s.Rewrite(true, a.sdp("")); err != nil {
				t.Fatal(err)
			}
			detach, err := s.Attach(true, PCMU, &recordingApp{})
			if err != nil {
				t.Fatal(err)
			}
			defer detach()
			pa, _ := s.Ports()
			if talking {
				defer talk(a, pa)()
				if side := waitIdle(s, 4*testTimeout); side != "" {
					t.Fatalf("a talking caller timed out (%q)", side)
				}
				return
			}
			if side := waitIdle(s, 5*time.Second); side != "caller" {
				t.Fatalf("Idle names %q, want the silent caller", side)
			}
		})
	}
}
