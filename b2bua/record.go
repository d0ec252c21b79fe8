package b2bua

import (
	"context"
	"time"
)

// Record describes a finished call, for call detail records. The engine hands one to its
// RecordWriter for every call on every way it can end.
type Record struct {
	CallID  string // the caller's Call-ID
	Caller  string // From user part
	Dialled string // Request-URI user part: what the caller dialled (a queue, a forwarded number)
	// Callee is who the caller ended up with: the extension (or URI user) that answered, after a
	// transfer the party that took over; for an unanswered call the last one rung, or Dialled.
	Callee   string
	Source   string // "ip:port" the INVITE came from
	Start    time.Time
	Answer   time.Time // zero when not answered
	End      time.Time
	Status   int    // final status sent to the caller (200 when answered)
	HangupBy string // "caller", "callee" or "pbx"
	Reason   string // why it ended, in words
	// Segments are the stretches of an answered call between two parties, in order: one for a
	// plain call, one more after each transfer.
	Segments []Segment
	// MediaCaller and MediaCallee are what each side sent through the media relay (zero without
	// one).
	MediaCaller, MediaCallee MediaStats
	// Recordings are the files the call was recorded into (RecordCall), in order: one per
	// recording started; none when it was not recorded.
	Recordings []string
}

// Segment is a stretch of a call during which two parties talked: the call's caller side and its
// callee side (a transfer puts a new party on one of them).
type Segment struct {
	Caller, Callee string
	Start, End     time.Time
	EndReason      string // "transferred", "hangup by caller", ...
}

// Disposition classifies the call the way CDRs do: "answered", "busy", "no_answer", "declined",
// "cancelled" or "failed".
func (r Record) Disposition() string {
	switch {
	case !r.Answer.IsZero():
		return "answered"
	case r.Status == 487:
		return "cancelled"
	case r.Status == 486 || r.Status == 600:
		return "busy"
	case r.Status == 603:
		return "declined"
	case r.Status == 480 || r.Status == 408:
		return "no_answer"
	}
	return "failed"
}

// RecordWriter stores call records. Errors are logged, never retried.
type RecordWriter interface {
	WriteRecord(ctx context.Context, r Record) error
}
