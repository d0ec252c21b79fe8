package store_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/store"
)

// TestCDRRoundTrip writes a queue call that was transferred (dialled the queue, answered by an
// agent, handed to a colleague) and reads back every field, segments in order.
func TestCDRRoundTrip(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := open(t, dsn, store.WithNodeID("node-b"))
		start := time.Date(2026, 11, 23, 9, 0, 0, 123456000, time.UTC)
		answer := start.Add(4 * time.Second)
		transfer := answer.Add(20*time.Second + 500*time.Millisecond)
		end := answer.Add(61*time.Second + 200*time.Millisecond)
		in := store.CDR{
			CallID: "call-1@pbx", Caller: "100", Dialled: "600", Callee: "202", Source: "192.0.2.10:5060",
			StartAt: start, AnswerAt: &answer, EndAt: end, Disposition: store.Answered, Status: 200,
			HangupBy: "callee", Reason: "BYE",
			ALeg: store.LegStats{Packets: 3260, Bytes: 563_980, Lost: 3, JitterMS: 1.25, ReportedLost: 2, ReportedJitterMS: 3.5, RTTMS: 41.25},
			BLeg: store.LegStats{Packets: 3258, Bytes: 563_634, Lost: 0, JitterMS: 0.5, ReportedLost: -1, ReportedJitterMS: 0.75, RTTMS: 12.5},
			Segments: []store.CDRSegment{
				{Seq: 0, Caller: "100", Callee: "201", StartAt: answer, EndAt: transfer, EndReason: "transferred"},
				{Seq: 1, Caller: "100", Callee: "202", StartAt: transfer, EndAt: end, EndReason: "hangup"},
			},
		}
		if err := s.WriteCDR(ctx, &in); err != nil {
			t.Fatal(err)
		}
		if in.DurationSec != 66 || in.BillableSec != 62 {
			t.Fatalf("derived durations: %d / %d, want 66 / 62 (65.2 s and 61.2 s rounded up)", in.DurationSec, in.BillableSec)
		}
		if in.ID == 0 || in.Segments[0].ID == 0 || in.Segments[1].ID == in.Segments[0].ID ||
			in.Segments[0].CDRID != in.ID || in.Segments[1].CDRID != in.ID {
			t.Fatalf("ids not filled in: cdr %d, segments %+v", in.ID, in.Segments)
		}
		out, err := s.CDRs(ctx, store.CDRFilter{CallID: "call-1@pbx"})
		if err != nil || len(out) != 1 {
			t.Fatalf("read: %v %d", err, len(out))
		}
		got := utc(out[0])
		if !reflect.DeepEqual(got, in) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, in)
		}
		if got.NodeID != "node-b" || got.Dialled != "600" || got.Segments[1].Callee != "202" {
			t.Fatalf("node id %q, dialled %q, segments %+v", got.NodeID, got.Dialled, got.Segments)
		}
		if d0, d1 := got.Segments[0].DurationSec(), got.Segments[1].DurationSec(); d0 != 21 || d1 != 41 {
			t.Fatalf("segment durations %d s, %d s; want 21 s, 41 s (20.5 s and 40.7 s rounded up)", d0, d1)
		}

		unanswered := store.CDR{CallID: "call-2", Caller: "100", Dialled: "201", Callee: "201", StartAt: start,
			EndAt: start.Add(20 * time.Second), Disposition: store.NoAnswer, Status: 480}
		if err := s.WriteCDR(ctx, &unanswered); err != nil {
			t.Fatal(err)
		}
		out, _ = s.CDRs(ctx, store.CDRFilter{CallID: "call-2"})
		if len(out) != 1 || out[0].AnswerAt != nil || out[0].BillableSec != 0 || out[0].DurationSec != 20 || len(out[0].Segments) != 0 {
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

// utc returns c with every time in UTC, as WriteCDR leaves the record it wrote: Postgres hands
// time stamps back in the session's zone.
func utc(c store.CDR) store.CDR {
	c.StartAt, c.EndAt, c.CreatedAt = c.StartAt.UTC(), c.EndAt.UTC(), c.CreatedAt.UTC()
	if c.AnswerAt != nil {
		a := c.AnswerAt.UTC()
		c.AnswerAt = &a
	}
	segs := make([]store.CDRSegment, len(c.Segments))
	for i, seg := range c.Segments {
		seg.StartAt, seg.EndAt = seg.StartAt.UTC(), seg.EndAt.UTC()
		segs[i] = seg
	}
	c.Segments = segs
	return c
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

// TestCDRSegmentsValidation: segments out of order or outside the talk time are refused, and the
// refused record is not stored at all.
func TestCDRSegmentsValidation(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := open(t, dsn)
		start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
		answer, end := start.Add(5*time.Second), start.Add(65*time.Second)
		at := func(sec int) time.Time { return start.Add(time.Duration(sec) * time.Second) }
		seg := func(seq, from, to int) store.CDRSegment {
			return store.CDRSegment{Seq: seq, Caller: "100", Callee: "200", StartAt: at(from), EndAt: at(to)}
		}
		for _, tc := range []struct {
			name     string
			answered bool
			segs     []store.CDRSegment
			msg      string // "" when valid
		}{
			{"one segment, the whole talk time", true, []store.CDRSegment{seg(0, 5, 65)}, ""},
			// A transferor may still be connected while the target answers.
			{"overlapping segments", true, []store.CDRSegment{seg(0, 5, 31), seg(1, 30, 65)}, ""},
			{"segment before the answer", true, []store.CDRSegment{seg(0, 4, 65)}, "segment 0 must lie between the call's answer_at and end_at"},
			{"segment after the end", true, []store.CDRSegment{seg(0, 5, 30), seg(1, 30, 66)}, "segment 1 must lie between the call's answer_at and end_at"},
			{"seq out of order", true, []store.CDRSegment{seg(1, 5, 30), seg(0, 30, 65)}, "segment 0 has seq 1: segments are numbered 0, 1, 2... in order"},
			{"seq with a gap", true, []store.CDRSegment{seg(0, 5, 30), seg(2, 30, 65)}, "segment 1 has seq 2: segments are numbered 0, 1, 2... in order"},
			{"seq starting at 1", true, []store.CDRSegment{seg(1, 5, 65)}, "segment 0 has seq 1: segments are numbered 0, 1, 2... in order"},
			{"starts before the one before it", true, []store.CDRSegment{seg(0, 30, 65), seg(1, 5, 30)}, "segment 1 starts before segment 0"},
			{"ends before it starts", true, []store.CDRSegment{seg(0, 30, 20)}, "segment 0 ends before it starts"},
			{"zero times", true, []store.CDRSegment{{Seq: 0, Callee: "200"}}, "segment 0 must lie between the call's answer_at and end_at"},
			{"segments of an unanswered call", false, []store.CDRSegment{seg(0, 5, 65)}, "an unanswered call has none"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := store.CDR{CallID: tc.name, Caller: "100", Dialled: "200", Callee: "200", StartAt: start, EndAt: end,
					Disposition: store.NoAnswer, Status: 480, Segments: tc.segs}
				if tc.answered {
					a := answer
					c.AnswerAt, c.Disposition, c.Status = &a, store.Answered, 200
				}
				err := s.WriteCDR(ctx, &c)
				if tc.msg == "" {
					if err != nil {
						t.Fatal(err)
					}
					return
				}
				var ie *store.InvalidError
				if !errors.As(err, &ie) || ie.Field != "segments" || ie.Msg != tc.msg {
					t.Fatalf("got %v, want invalid segments: %s", err, tc.msg)
				}
				if out, err := s.CDRs(ctx, store.CDRFilter{CallID: tc.name}); err != nil || len(out) != 0 {
					t.Fatalf("refused record stored: %v %+v", err, out)
				}
			})
		}
	})
}

// TestCDRWriteAtomic: when a segment cannot be stored, the record is not stored either; removing
// a record removes its segments.
func TestCDRWriteAtomic(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := open(t, dsn)
		// A trigger stands in for any failure of the second insert (a lost connection, a full disk).
		var ddl []string
		if s.Dialect() == "postgres" {
			ddl = []string{
				`CREATE FUNCTION refuse_segment() RETURNS trigger LANGUAGE plpgsql AS $$
				 BEGIN IF NEW.callee = 'refused' THEN RAISE EXCEPTION 'segment refused by test'; END IF; RETURN NEW; END $$`,
				`CREATE TRIGGER refuse_segment BEFORE INSERT ON cdr_segments FOR EACH ROW EXECUTE FUNCTION refuse_segment()`,
			}
		} else {
			ddl = []string{`CREATE TRIGGER refuse_segment BEFORE INSERT ON cdr_segments WHEN NEW.callee = 'refused'
				 BEGIN SELECT RAISE(ABORT, 'segment refused by test'); END`}
		}
		for _, q := range ddl {
			if err := store.Exec(ctx, s, q); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC)
		answer, end := start.Add(2*time.Second), start.Add(40*time.Second)
		write := func(callID, second string) (store.CDR, error) {
			a := answer
			c := store.CDR{CallID: callID, Caller: "100", Dialled: "200", Callee: second, StartAt: start, AnswerAt: &a, EndAt: end,
				Disposition: store.Answered, Status: 200, Segments: []store.CDRSegment{
					{Seq: 0, Caller: "100", Callee: "200", StartAt: answer, EndAt: answer.Add(10 * time.Second), EndReason: "transferred"},
					{Seq: 1, Caller: "100", Callee: second, StartAt: answer.Add(10 * time.Second), EndAt: end, EndReason: "hangup"},
				}}
			err := s.WriteCDR(ctx, &c)
			return c, err
		}
		c, err := write("refused-call", "refused")
		if err == nil || errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), "segment refused by test") {
			t.Fatalf("write with a refused segment: %v", err)
		}
		if c.ID != 0 || c.Segments[0].ID != 0 || c.Segments[0].CDRID != 0 {
			t.Fatalf("ids of rolled-back rows left in the record: %d %+v", c.ID, c.Segments)
		}
		for _, q := range []string{"SELECT count(*) FROM cdrs", "SELECT count(*) FROM cdr_segments"} {
			if n, err := store.Count(ctx, s, q); err != nil || n != 0 {
				t.Fatalf("%s after a failed write: %d %v", q, n, err)
			}
		}

		c, err = write("kept-call", "201")
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Exec(ctx, s, "DELETE FROM cdrs WHERE id = ?", c.ID); err != nil {
			t.Fatal(err)
		}
		if n, err := store.Count(ctx, s, "SELECT count(*) FROM cdr_segments"); err != nil || n != 0 {
			t.Fatalf("segments left after their record was removed: %d %v", n, err)
		}
	})
}

// TestCDRSegmentsBySeq: segments come back in seq order, not in the order they were stored.
func TestCDRSegmentsBySeq(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := open(t, dsn)
		start := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
		a := start
		c := store.CDR{CallID: "three", Caller: "100", Dialled: "200", Callee: "203", StartAt: start, AnswerAt: &a,
			EndAt: start.Add(30 * time.Second), Disposition: store.Answered, Status: 200}
		for i, callee := range []string{"201", "202", "203"} {
			from := start.Add(time.Duration(10*i) * time.Second)
			c.Segments = append(c.Segments, store.CDRSegment{Seq: i, Caller: "100", Callee: callee, StartAt: from, EndAt: from.Add(10 * time.Second)})
		}
		if err := s.WriteCDR(ctx, &c); err != nil {
			t.Fatal(err)
		}
		// Reverse the numbering, so that id order and seq order disagree: 0,1,2 become 10,9,8.
		if err := store.Exec(ctx, s, "UPDATE cdr_segments SET seq = 10 - seq WHERE cdr_id = ?", c.ID); err != nil {
			t.Fatal(err)
		}
		out, err := s.CDRs(ctx, store.CDRFilter{CallID: "three"})
		if err != nil || len(out) != 1 || len(out[0].Segments) != 3 {
			t.Fatalf("read: %v %+v", err, out)
		}
		var got []string
		for _, seg := range out[0].Segments {
			got = append(got, fmt.Sprintf("%d:%s", seg.Seq, seg.Callee))
		}
		if strings.Join(got, " ") != "8:203 9:202 10:201" {
			t.Fatalf("segments in order %v, want by seq", got)
		}
	})
}

// TestCDRFilterExtension: an extension finds the calls it made, dialled, answered, or took part
// in through a segment (a transfer target, an agent a queue call passed through); the other
// filters still narrow the result.
func TestCDRFilterExtension(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := open(t, dsn)
		start := time.Date(2026, 11, 23, 13, 0, 0, 0, time.UTC)
		write := func(callID string, offset time.Duration, caller, dialled, callee string, segs ...[2]string) {
			t.Helper()
			begin := start.Add(offset)
			a := begin
			c := store.CDR{CallID: callID, Caller: caller, Dialled: dialled, Callee: callee, StartAt: begin, AnswerAt: &a,
				EndAt: begin.Add(time.Minute), Disposition: store.Answered, Status: 200}
			for i, p := range segs {
				c.Segments = append(c.Segments, store.CDRSegment{Seq: i, Caller: p[0], Callee: p[1], StartAt: begin, EndAt: begin.Add(time.Minute)})
			}
			if err := s.WriteCDR(ctx, &c); err != nil {
				t.Fatal(err)
			}
		}
		// A queue call taken by 201 and transferred to 202; a plain call; a call from 201.
		write("queue", 0, "100", "600", "202", [2]string{"100", "201"}, [2]string{"100", "202"})
		write("plain", time.Hour, "300", "301", "301", [2]string{"300", "301"})
		write("from-201", 2*time.Hour, "201", "100", "100")
		for _, tc := range []struct {
			f    store.CDRFilter
			want string
		}{
			{store.CDRFilter{Extension: "201"}, "from-201 queue"}, // caller, and a segment's callee
			{store.CDRFilter{Extension: "600"}, "queue"},          // dialled
			{store.CDRFilter{Extension: "202"}, "queue"},          // callee
			{store.CDRFilter{Extension: "100"}, "from-201 queue"}, // callee, and caller
			{store.CDRFilter{Extension: "300"}, "plain"},
			{store.CDRFilter{Extension: "999"}, ""},
			{store.CDRFilter{Extension: "201", CallID: "queue"}, "queue"},
			{store.CDRFilter{Extension: "201", Since: start.Add(time.Minute)}, "from-201"},
			{store.CDRFilter{Extension: "100", Limit: 1}, "from-201"},
			{store.CDRFilter{}, "from-201 plain queue"},
		} {
			out, err := s.CDRs(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range out {
				got = append(got, c.CallID)
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("%+v: got %v, want %s", tc.f, got, tc.want)
			}
		}
	})
}

// TestCDRMigrationDownUp steps migration 00003 down and up again with records in the database:
// down keeps the records, drops their segments and puts the dialled number back into callee (its
// version 2 meaning); up gives records written before it that number as Dialled.
func TestCDRMigrationDownUp(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := open(t, dsn)
		cur, latest, err := s.MigrationVersion(ctx)
		if err != nil || cur != latest || latest < 6 {
			t.Fatalf("version %d of %d, %v; want the latest, 6 or later", cur, latest, err)
		}
		start := time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC)
		a := start.Add(time.Second)
		c := store.CDR{CallID: "v3", Caller: "100", Dialled: "600", Callee: "201", StartAt: start, AnswerAt: &a,
			EndAt: start.Add(time.Minute), Disposition: store.Answered, Status: 200,
			Segments: []store.CDRSegment{{Seq: 0, Caller: "100", Callee: "201", StartAt: a, EndAt: start.Add(time.Minute), EndReason: "hangup"}}}
		if err := s.WriteCDR(ctx, &c); err != nil {
			t.Fatal(err)
		}
		// A call core that does not fill Dialled yet: its callee is still the dialled number.
		unwired := store.CDR{CallID: "v3-no-dialled", Caller: "100", Callee: "300", StartAt: start.Add(-time.Hour),
			EndAt: start.Add(-time.Hour), Disposition: store.Failed, Status: 500}
		if err := s.WriteCDR(ctx, &unwired); err != nil {
			t.Fatal(err)
		}

		// Down to version 3, one migration at a time. Version numbers may have gaps (numbers
		// handed out to branches that merge later), so each step must only go lower.
		for v := latest; v > 3; {
			next, err := s.MigrateDown(ctx)
			if err != nil || next >= v || next < 3 {
				t.Fatalf("down from %d: version %d, %v", v, next, err)
			}
			v = next
		}
		if v, err := s.MigrateDown(ctx); err != nil || v != 2 {
			t.Fatalf("down: version %d, %v; want 2", v, err)
		}
		if _, err := store.Count(ctx, s, "SELECT count(*) FROM cdr_segments"); err == nil {
			t.Fatal("cdr_segments still there at version 2")
		}
		for _, callee := range []string{"600", "300"} {
			if n, err := store.Count(ctx, s, "SELECT count(*) FROM cdrs WHERE callee = ?", callee); err != nil || n != 1 {
				t.Fatalf("records with callee %s at version 2: %d %v", callee, n, err)
			}
		}
		// A record as the version 2 call core wrote it: callee is the Request-URI's user part.
		err = store.Exec(ctx, s, `INSERT INTO cdrs (call_id, caller, callee, start_at, end_at, disposition, status, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, "v2", "100", "600", start.Add(time.Hour), start.Add(time.Hour+time.Minute), "no_answer", 408, start)
		if err != nil {
			t.Fatal(err)
		}

		if v, err := s.MigrateUp(ctx); err != nil || v != latest {
			t.Fatalf("up: version %d, %v; want %d", v, err, latest)
		}
		out, err := s.CDRs(ctx, store.CDRFilter{})
		if err != nil || len(out) != 3 {
			t.Fatalf("read after up: %v %+v", err, out)
		}
		if v2 := out[0]; v2.CallID != "v2" || v2.Dialled != "600" || v2.Callee != "600" || len(v2.Segments) != 0 {
			t.Fatalf("version 2 record after up: %+v", v2)
		}
		// The round trip loses what version 2 cannot hold: the segments and who answered.
		if v3 := out[1]; v3.CallID != "v3" || v3.Dialled != "600" || v3.Callee != "600" || len(v3.Segments) != 0 {
			t.Fatalf("version 3 record after down and up: %+v", v3)
		}
		if u := out[2]; u.CallID != "v3-no-dialled" || u.Dialled != "300" || u.Callee != "300" {
			t.Fatalf("record without dialled after down and up: %+v", u)
		}
		if err := s.WriteCDR(ctx, &c); err != nil {
			t.Fatalf("write with segments after up: %v", err)
		}
	})
}

// TestCDRWriteBatch: WriteCDRs stores several records, answered or not, each with its own
// segments, in one go; a batch with an invalid record stores nothing.
func TestCDRWriteBatch(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := open(t, dsn)
		start := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
		answered := func(callID string, callees ...string) *store.CDR {
			answer := start.Add(time.Second)
			c := &store.CDR{CallID: callID, Caller: "100", Dialled: callees[0], Callee: callees[len(callees)-1],
				StartAt: start, AnswerAt: &answer, EndAt: start.Add(time.Duration(len(callees)+1) * 10 * time.Second),
				Disposition: store.Answered, Status: 200}
			for i, callee := range callees {
				c.Segments = append(c.Segments, store.CDRSegment{Seq: i, Caller: "100", Callee: callee,
					StartAt: answer.Add(time.Duration(i) * 10 * time.Second), EndAt: answer.Add(time.Duration(i+1) * 10 * time.Second)})
			}
			return c
		}
		busy := &store.CDR{CallID: "busy", Caller: "100", Dialled: "203", Callee: "203", StartAt: start, EndAt: start.Add(time.Second),
			Disposition: store.Busy, Status: 486}
		batch := []*store.CDR{answered("one", "201"), busy, answered("two", "201", "202")}
		if err := s.WriteCDRs(ctx, batch); err != nil {
			t.Fatal(err)
		}
		for _, want := range batch {
			got, err := s.CDRs(ctx, store.CDRFilter{CallID: want.CallID})
			if err != nil || len(got) != 1 || got[0].ID != want.ID || len(got[0].Segments) != len(want.Segments) {
				t.Fatalf("%s: %v %+v", want.CallID, err, got)
			}
			for i, seg := range got[0].Segments {
				if seg.CDRID != want.ID || seg.Callee != want.Segments[i].Callee || seg.ID != want.Segments[i].ID {
					t.Fatalf("%s segment %d: %+v, want %+v", want.CallID, i, seg, want.Segments[i])
				}
			}
		}
		bad := answered("bad", "201")
		bad.Segments[0].Seq = 5
		if err := s.WriteCDRs(ctx, []*store.CDR{answered("three", "201"), bad}); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("a batch with an invalid record: %v", err)
		}
		if n, err := store.Count(ctx, s, "SELECT count(*) FROM cdrs"); err != nil || n != 3 {
			t.Fatalf("%d records after the refused batch, want 3 (%v)", n, err)
		}
	})
}

// TestCDRKeyStoredOnce: records carrying a key are stored once however often they are written
// (a PBX replaying its spool after a crash); records without one are always stored.
func TestCDRKeyStoredOnce(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := open(t, dsn)
		start := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
		rec := func(callID, key string) *store.CDR {
			c := &store.CDR{CallID: callID, Caller: "100", Callee: "200", StartAt: start, EndAt: start.Add(time.Second),
				Disposition: store.Busy, Status: 486}
			if key != "" {
				c.Key = &key
			}
			return c
		}
		first := rec("a", "key-a")
		if err := s.WriteCDRs(ctx, []*store.CDR{first, rec("b", "key-b")}); err != nil {
			t.Fatal(err)
		}
		again := rec("a", "key-a")
		if err := s.WriteCDRs(ctx, []*store.CDR{again, rec("c", "key-c"), rec("n", ""), rec("n", "")}); err != nil {
			t.Fatal(err)
		}
		if again.ID != first.ID {
			t.Fatalf("the replayed record got ID %d, want the stored %d", again.ID, first.ID)
		}
		for _, tc := range []struct {
			callID string
			n      int
		}{{"a", 1}, {"b", 1}, {"c", 1}, {"n", 2}} {
			got, err := s.CDRs(ctx, store.CDRFilter{CallID: tc.callID})
			if err != nil || len(got) != tc.n {
				t.Fatalf("%s: %d records, want %d (%v)", tc.callID, len(got), tc.n, err)
			}
		}
	})
}
