package store

import (
	"testing"
	"time"
)

// TestPrepareBillableWithinDuration sweeps start, answer and end over fractions of a second: the
// billable seconds never exceed the duration, and each is its interval rounded up.
func TestPrepareBillableWithinDuration(t *testing.T) {
	base := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	const step = 37 * time.Millisecond // not a divisor of a second: the fractions vary
	for start := time.Duration(0); start < time.Second; start += step {
		for answer := start; answer < start+3*time.Second; answer += step {
			for end := answer; end < answer+2*time.Second; end += step {
				a := base.Add(answer)
				c := CDR{CallID: "x", StartAt: base.Add(start), AnswerAt: &a, EndAt: base.Add(end), Disposition: Answered}
				if err := c.prepare(); err != nil {
					t.Fatal(err)
				}
				ceil := func(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }
				if c.BillableSec > c.DurationSec || c.DurationSec != ceil(end-start) || c.BillableSec != ceil(end-answer) {
					t.Fatalf("start %v answer %v end %v: duration %d billable %d", start, answer, end, c.DurationSec, c.BillableSec)
				}
			}
		}
	}
}
