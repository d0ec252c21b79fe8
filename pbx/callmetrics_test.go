package pbx_test

import (
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/pbx"
)

// metricValues gathers the PBX's metrics: each series' value (counter, gauge, or a histogram's
// sample count) by name and label value ("name" alone without labels).
func metricValues(t *testing.T, tp *testPBX) map[string]float64 {
	t.Helper()
	mfs, err := tp.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "/" + l.GetValue()
			}
			switch {
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				out[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// TestCallMetrics: an answered call and a busy one are counted by disposition, their setup
// times observed, the registration counted; a script error counts as a dialplan error.
func TestCallMetrics(t *testing.T) {
	tp, caller, callees, _ := luaPBX(t, `
function route(call)
  if call.to == "666" then error("boom") end
end`, pbx.Config{}, 1)
	inv, ok, _ := answeredCall(t, tp, caller, callees[0])
	hangUp(t, tp, caller, callees[0], inv, ok, 2)

	msg, _ := invite(caller)
	caller.Send(msg)
	b := callees[0].WaitRequest("INVITE")
	callees[0].Respond(b, 486, "Busy Here", "")
	caller.WaitResponse(486)
	if res := final(second(dial(t, caller, "666"))); res.StatusCode != 500 {
		t.Fatalf("script error: %d", res.StatusCode)
	}
	waitIdle(t, tp)

	want := map[string]float64{
		"pbxkit_calls_total/answered":  1,
		"pbxkit_calls_total/busy":      1,
		"pbxkit_calls_total/failed":    1,
		"pbxkit_calls_total/no_answer": 0,
		"pbxkit_call_setup_seconds":    1, // only the answered call rang: the busy one was refused at once
		"pbxkit_dialplan_errors_total": 1,
		"pbxkit_registrations":         1, // the callee's binding
	}
	// A call's record is written just after the call leaves the engine: wait for the counts.
	var m map[string]float64
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		m = metricValues(t, tp)
		if matches(m, want) || time.Now().After(deadline) {
			break
		}
	}
	for key, w := range want {
		if got, ok := m[key]; !ok || got != w {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, w)
		}
	}
	for _, key := range []string{"pbxkit_rtp_packets_total", "pbxkit_rtp_packets_lost_total", "pbxkit_auth_failures_total", "pbxkit_auth_bans_total"} {
		if _, ok := m[key]; !ok {
			t.Errorf("%s missing", key)
		}
	}
}

// matches reports whether every series in want has its value in got.
func matches(got, want map[string]float64) bool {
	for k, w := range want {
		if v, ok := got[k]; !ok || v != w {
			return false
		}
	}
	return true
}

// TestDTMFCounted: a key press sent as SIP INFO during a bridged call passes on to the callee
// and counts in pbxkit_dtmf_total{source="info"}.
func TestDTMFCounted(t *testing.T) {
	tp, caller, callees, _ := luaPBX(t, `function route(call) end`, pbx.Config{}, 1)
	inv, ok, _ := answeredCall(t, tp, caller, callees[0])
	caller.Send(caller.InDialogWith("INFO", inv, ok, 2, "Content-Type: application/dtmf-relay\r\n", "Signal=#\r\nDuration=160\r\n"))
	info := callees[0].WaitRequest("INFO")
	callees[0].Respond(info, 200, "OK", "")
	caller.WaitResponse(200)
	hangUp(t, tp, caller, callees[0], inv, ok, 3)
	got := metricValues(t, tp)
	if got["pbxkit_dtmf_total/info"] != 1 || got["pbxkit_dtmf_total/rfc4733"] != 0 {
		t.Errorf("pbxkit_dtmf_total: info %v, rfc4733 %v; want 1 and 0", got["pbxkit_dtmf_total/info"], got["pbxkit_dtmf_total/rfc4733"])
	}
}
