package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Disposition says how a call ended, for CDRs.
type Disposition string

// Dispositions of a CDR.
const (
	Answered Disposition = "answered"
	NoAnswer Disposition = "no_answer"
	Busy     Disposition = "busy"
	// Declined: the callee, or routing on its behalf (do not disturb), answered 603 Decline
	// (RFC 3261 §21.6.2). Someone chose not to take the call: neither busy nor a failure.
	Declined  Disposition = "declined"
	Failed    Disposition = "failed"
	Cancelled Disposition = "cancelled"
)

// dispositions lists every Disposition once, for valid and its error message.
var dispositions = []Disposition{Answered, NoAnswer, Busy, Declined, Failed, Cancelled}

func (d Disposition) valid() bool { return slices.Contains(dispositions, d) }

// LegStats are a call leg's media statistics: what the leg's phone sent, as the RTP relay
// measured it, and what the phone said in RTCP of the audio it received.
type LegStats struct {
	Packets  int64
	Bytes    int64
	Lost     int64
	JitterMS float64
	// From the phone's latest RTCP reception report (RFC 3550 §6.4): packets it lost and its
	// jitter; and the round trip between the PBX and the phone (0: unknown).
	ReportedLost     int64   `gorm:"column:reported_lost"`
	ReportedJitterMS float64 `gorm:"column:reported_jitter_ms"`
	RTTMS            float64 `gorm:"column:rtt_ms"`
}

// CDR is the record of one call. DurationSec and BillableSec are derived from the times when the
// record is written: duration from start to end, billable from answer to end, both rounded up to
// whole seconds (a started second counts, as carriers bill). Rounding both the same way keeps
// BillableSec <= DurationSec: the talk time is a part of the call.
type CDR struct {
	ID          int64       `gorm:"column:id;primaryKey"`
	CallID      string      `gorm:"column:call_id"`
	Caller      string      `gorm:"column:caller"`
	Callee      string      `gorm:"column:callee"`
	Source      string      `gorm:"column:source"`
	StartAt     time.Time   `gorm:"column:start_at"`
	AnswerAt    *time.Time  `gorm:"column:answer_at"`
	EndAt       time.Time   `gorm:"column:end_at"`
	DurationSec int         `gorm:"column:duration_sec"`
	BillableSec int         `gorm:"column:billable_sec"`
	Disposition Disposition `gorm:"column:disposition"`
	Status      int         `gorm:"column:status"`    // final SIP status sent to the caller
	HangupBy    string      `gorm:"column:hangup_by"` // "caller", "callee" or "pbx"
	Reason      string      `gorm:"column:reason"`
	NodeID      string      `gorm:"column:node_id"`
	ALeg        LegStats    `gorm:"embedded;embeddedPrefix:a_"`
	BLeg        LegStats    `gorm:"embedded;embeddedPrefix:b_"`
	CreatedAt   time.Time   `gorm:"column:created_at"`
}

// TableName tells gorm the table.
func (CDR) TableName() string { return "cdrs" }

// prepare checks c, brings its times to what the databases store (UTC, microseconds) and derives
// the durations from those, so that a record read back gives the same figures when recomputed.
func (c *CDR) prepare() error {
	c.StartAt, c.EndAt = dbTime(c.StartAt), dbTime(c.EndAt)
	if c.AnswerAt != nil {
		// A copy: the caller's time value may be shared with other code.
		a := dbTime(*c.AnswerAt)
		c.AnswerAt = &a
	}
	if c.CallID == "" {
		return invalid("call_id", "must be set")
	}
	if !c.Disposition.valid() {
		names := make([]string, len(dispositions))
		for i, d := range dispositions {
			names[i] = string(d)
		}
		return invalid("disposition", fmt.Sprintf("%q is not one of %s", c.Disposition, strings.Join(names, ", ")))
	}
	if c.StartAt.IsZero() || c.EndAt.Before(c.StartAt) {
		return invalid("end_at", "must be set and not before start_at")
	}
	if c.Status != 0 && (c.Status < 100 || c.Status > 699) {
		return invalid("status", "must be a SIP status code")
	}
	c.DurationSec = secondsUp(c.EndAt.Sub(c.StartAt))
	c.BillableSec = 0
	if c.AnswerAt != nil {
		if c.AnswerAt.Before(c.StartAt) || c.AnswerAt.After(c.EndAt) {
			return invalid("answer_at", "must lie between start_at and end_at")
		}
		c.BillableSec = secondsUp(c.EndAt.Sub(*c.AnswerAt))
	}
	return nil
}

// secondsUp rounds d up to whole seconds. It is monotonic, so the talk time (answer to end, never
// longer than start to end) cannot round to more than the call's duration; rounding the two
// differently (duration down, billable up) once billed 2 s of a call that lasted 1 s.
func secondsUp(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }

// WriteCDR stores a finished call's record; DurationSec and BillableSec are computed from the
// times.
func (s *Store) WriteCDR(ctx context.Context, c *CDR) error {
	if err := c.prepare(); err != nil {
		return err
	}
	c.ID = 0
	if c.NodeID == "" {
		c.NodeID = s.opt.nodeID
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	return mapErr("store: write cdr "+c.CallID, s.db.WithContext(ctx).Create(c).Error)
}

// CDRFilter selects call records; zero fields do not filter.
type CDRFilter struct {
	CallID string
	Since  time.Time
	Limit  int // default 100
}

// CDRs returns the matching call records, newest first.
func (s *Store) CDRs(ctx context.Context, f CDRFilter) ([]CDR, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	q := s.db.WithContext(ctx).Order("start_at DESC, id DESC")
	if f.CallID != "" {
		q = q.Where("call_id = ?", f.CallID)
	}
	if !f.Since.IsZero() {
		q = q.Where("start_at >= ?", f.Since.UTC())
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	var out []CDR
	err := q.Limit(f.Limit).Find(&out).Error
	return out, mapErr("store: list cdrs", err)
}
