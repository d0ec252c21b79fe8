package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/store"
)

func TestCDRRoundTrip(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := open(t, dsn, store.WithNodeID("node-b"))
		start := time.Date(2026, 11, 23, 9, 0, 0, 123456000, time.UTC)
		answer := start.Add(4 * time.Second)
		end := answer.Add(61*time.Second + 200*time.Millisecond)
		in := store.CDR{
			CallID: "call-1@pbx", Caller: "100", Callee: "200", Source: "192.0.2.10:5060",
			StartAt: start, AnswerAt: &answer, EndAt: end, Disposition: store.Answered, Status: 200,
			HangupBy: "callee", Reason: "BYE",
			ALeg: store.LegStats{Packets: 3260, Bytes: 563_980, Lost: 3, JitterMS: 1.25, ReportedLost: 2, ReportedJitterMS: 3.5, RTTMS: 41.25},
			BLeg: store.LegStats{Packets: 3258, Bytes: 563_634, Lost: 0, JitterMS: 0.5, ReportedLost: -1, ReportedJitterMS: 0.75, RTTMS: 12.5},
		}
		if err := s.WriteCDR(ctx, &in); err != nil {
			t.Fatal(err)
		}
		if in.DurationSec != 66 || in.BillableSec != 62 {
			t.Fatalf("derived durations: %d / %d, want 66 / 62 (65.2 s and 61.2 s rounded up)", in.DurationSec, in.BillableSec)
		}
		out, err := s.CDRs(ctx, store.CDRFilter{CallID: "call-1@pbx"})
		if err != nil || len(out) != 1 {
			t.Fatalf("read: %v %d", err, len(out))
		}
		got := out[0]
		if !got.StartAt.Equal(start) || got.AnswerAt == nil || !got.AnswerAt.Equal(answer) || !got.EndAt.Equal(end) {
			t.Fatalf("times: %v %v %v", got.StartAt, got.AnswerAt, got.EndAt)
		}
		got.StartAt, got.EndAt, got.AnswerAt, got.CreatedAt = in.StartAt, in.EndAt, in.AnswerAt, in.CreatedAt
		if got != in {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, in)
		}
		if got.NodeID != "node-b" {
			t.Fatalf("node id %q", got.NodeID)
		}

		unanswered := store.CDR{CallID: "call-2", StartAt: start, EndAt: start.Add(20 * time.Second), Disposition: store.NoAnswer, Status: 480}
		if err := s.WriteCDR(ctx, &unanswered); err != nil {
			t.Fatal(err)
		}
		out, _ = s.CDRs(ctx, store.CDRFilter{CallID: "call-2"})
		if len(out) != 1 || out[0].AnswerAt != nil || out[0].BillableSec != 0 || out[0].DurationSec != 20 {
			t.Fatalf("unanswered: %+v", out)
		}
		for _, bad := range []store.CDR{
			{CallID: "", StartAt: start, EndAt: end, Disposition: store.Failed},
			{CallID: "x", StartAt: start, EndAt: end, Disposition: "weird"},
			{CallID: "x", StartAt: end, EndAt: start, Disposition: store.Failed},
			{CallID: "x", StartAt: start, EndAt: end, Disposition: store.Failed, Status: 1000},
		} {
			if err := s.WriteCDR(ctx, &bad); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("bad cdr %+v: got %v", bad, err)
			}
		}
	})
}

// TestCDRDurations: duration and billable time are both rounded up to whole seconds, so billable
// never exceeds duration, whatever fractions of a second the three times carry.
func TestCDRDurations(t *testing.T) {
	s := open(t, "sqlite::memory:")
	base := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	ms := time.Millisecond
	for _, tc := range []struct {
		name               string
		start, answer, end time.Duration // offsets from base; answer < 0: not answered
		duration, billable int
	}{
		{"whole seconds", 0, 5 * time.Second, 35 * time.Second, 35, 30},
		{"answered 1 ms before the end", 0, 10*time.Second + 999*ms, 11 * time.Second, 11, 1},
		{"answered at once, 1 ms of talk", 0, 0, 1 * ms, 1, 1},
		// Duration 1.1 s and talk 1.05 s: duration rounded down and talk rounded up gave 1 / 2.
		{"fractions that rounded apart", 900 * ms, 950 * ms, 2 * time.Second, 2, 2},
		{"talk just over a second", 0, 100 * ms, 1900 * ms, 2, 2},
		{"answered at the end", 0, 3 * time.Second, 3 * time.Second, 3, 0},
		{"not answered", 250 * ms, -1, 20*time.Second + 250*ms, 20, 0},
		{"zero length", 0, -1, 0, 0, 0},
		// Times are kept to the microsecond; the figures come from the stored times.
		{"below a microsecond", 400, 900, 1*time.Second + 900, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := store.CDR{CallID: tc.name, StartAt: base.Add(tc.start), EndAt: base.Add(tc.end), Disposition: store.NoAnswer}
			if tc.answer >= 0 {
				a := base.Add(tc.answer)
				c.AnswerAt, c.Disposition = &a, store.Answered
			}
			if err := s.WriteCDR(context.Background(), &c); err != nil {
				t.Fatal(err)
			}
			if c.DurationSec != tc.duration || c.BillableSec != tc.billable {
				t.Fatalf("duration / billable %d / %d, want %d / %d", c.DurationSec, c.BillableSec, tc.duration, tc.billable)
			}
			out, err := s.CDRs(context.Background(), store.CDRFilter{CallID: tc.name})
			if err != nil || len(out) != 1 || out[0].DurationSec != tc.duration || out[0].BillableSec != tc.billable {
				t.Fatalf("read back: %v %+v", err, out)
			}
		})
	}
}

// TestCDRDeclined: a 603 answer is recorded as declined, and the validation message names the
// disposition among the valid ones.
func TestCDRDeclined(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := open(t, dsn)
		start := time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC)
		in := store.CDR{CallID: "declined-1", Caller: "100", Callee: "200", StartAt: start,
			EndAt: start.Add(3 * time.Second), Disposition: store.Declined, Status: 603, HangupBy: "callee", Reason: "Decline"}
		if err := s.WriteCDR(ctx, &in); err != nil {
			t.Fatal(err)
		}
		out, err := s.CDRs(ctx, store.CDRFilter{CallID: "declined-1"})
		if err != nil || len(out) != 1 || out[0].Disposition != store.Declined || out[0].Status != 603 || out[0].BillableSec != 0 {
			t.Fatalf("read back: %v %+v", err, out)
		}
		bad := store.CDR{CallID: "x", StartAt: start, EndAt: start, Disposition: "rejected"}
		err = s.WriteCDR(ctx, &bad)
		var ie *store.InvalidError
		if !errors.As(err, &ie) || ie.Field != "disposition" ||
			ie.Msg != `"rejected" is not one of answered, no_answer, busy, declined, failed, cancelled` {
			t.Fatalf("bad disposition: %v", err)
		}
	})
}
