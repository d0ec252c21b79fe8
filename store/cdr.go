package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
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

// dispositionList names the dispositions for error messages.
func dispositionList() string {
	names := make([]string, len(dispositions))
	for i, d := range dispositions {
		names[i] = string(d)
	}
	return strings.Join(names, ", ")
}

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
//
// Dialled and Callee differ whenever routing chose someone other than the number dialled: a queue
// call is dialled to the queue and answered by an agent, a forwarded call dialled to the
// forwarding extension and answered by the target. Segments say who talked to whom while the call
// lasted; the store keeps what the call core reports and checks only that the times fit.
type CDR struct {
	ID     int64  `gorm:"column:id;primaryKey"`
	CallID string `gorm:"column:call_id"`
	Caller string `gorm:"column:caller"`
	// Dialled is what the caller asked for: the Request-URI's user part (a queue or group number,
	// an extension that forwarded the call).
	Dialled string `gorm:"column:dialled"`
	// Callee is the party that finally answered or, for an unanswered call, the last one tried.
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
	// Recording names the file the call was recorded into, "" when it was not; a call whose
	// recording was stopped and started again has one file per start, one path a line.
	Recording string `gorm:"column:recording"`
	// Key, when set, names the record for good: WriteCDRs stores a record whose key is already
	// stored no second time, so a writer may retry or replay records (after a crash, a database
	// outage) and each is kept exactly once. Records without one are always stored.
	Key       *string   `gorm:"column:record_key"`
	ALeg      LegStats  `gorm:"embedded;embeddedPrefix:a_"`
	BLeg      LegStats  `gorm:"embedded;embeddedPrefix:b_"`
	CreatedAt time.Time `gorm:"column:created_at"`
	// Segments are the stretches of an answered call, numbered from 0: one for a plain call, one
	// more for each party that took over (a transfer's target). None for an unanswered call.
	Segments []CDRSegment `gorm:"foreignKey:CDRID"`
}

// TableName tells gorm the table.
func (CDR) TableName() string { return "cdrs" }

// CDRSegment is one stretch of an answered call during which two parties talked: from the answer
// until a transfer, from the transfer until the hang-up. Parties are extension numbers or SIP user
// parts, as in CDR.Caller and CDR.Callee.
type CDRSegment struct {
	ID    int64 `gorm:"column:id;primaryKey"`
	CDRID int64 `gorm:"column:cdr_id"` // the CDR this belongs to; removing the CDR removes it
	// Seq is the segment's place in its call, 0, 1, 2...: Segments[i].Seq must be i.
	Seq     int       `gorm:"column:seq"`
	Caller  string    `gorm:"column:caller"`
	Callee  string    `gorm:"column:callee"`
	StartAt time.Time `gorm:"column:start_at"`
	EndAt   time.Time `gorm:"column:end_at"`
	// EndReason says why the stretch ended, in the call core's words: "transferred", "hangup"...
	EndReason string `gorm:"column:end_reason"`
}

// TableName tells gorm the table.
func (CDRSegment) TableName() string { return "cdr_segments" }

// DurationSec is the segment's length rounded up to whole seconds, as the record's durations are.
func (s CDRSegment) DurationSec() int { return secondsUp(s.EndAt.Sub(s.StartAt)) }

// prepare checks c, brings its times to what the databases store (UTC, microseconds) and derives
// the durations from those, so that a record read back gives the same figures when recomputed.
func (c *CDR) prepare() error {
	c.StartAt, c.EndAt = dbTime(c.StartAt), dbTime(c.EndAt)
	if c.AnswerAt != nil {
		// A copy: the caller's time value may be shared with other code.
		a := dbTime(*c.AnswerAt)
		c.AnswerAt = &a
	}
	for i := range c.Segments {
		c.Segments[i].StartAt, c.Segments[i].EndAt = dbTime(c.Segments[i].StartAt), dbTime(c.Segments[i].EndAt)
	}
	if c.CallID == "" {
		return invalid("call_id", "must be set")
	}
	if !c.Disposition.valid() {
		return invalid("disposition", fmt.Sprintf("%q is not one of %s", c.Disposition, dispositionList()))
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
	return c.validateSegments()
}

// validateSegments checks that the segments are numbered in order and lie within the talk time.
// They may overlap: during a transfer the transferor can still be connected while the target
// answers, and the call core may take the two times from different events.
func (c *CDR) validateSegments() error {
	if len(c.Segments) == 0 {
		return nil
	}
	if c.AnswerAt == nil {
		return invalid("segments", "an unanswered call has none")
	}
	for i, seg := range c.Segments {
		var msg string
		switch {
		case seg.Seq != i:
			msg = fmt.Sprintf("has seq %d: segments are numbered 0, 1, 2... in order", seg.Seq)
		case seg.EndAt.Before(seg.StartAt):
			msg = "ends before it starts"
		case seg.StartAt.Before(*c.AnswerAt) || seg.EndAt.After(c.EndAt):
			msg = "must lie between the call's answer_at and end_at"
		case i > 0 && seg.StartAt.Before(c.Segments[i-1].StartAt):
			msg = fmt.Sprintf("starts before segment %d", i-1)
		default:
			continue
		}
		return invalid("segments", fmt.Sprintf("segment %d %s", i, msg))
	}
	return nil
}

// secondsUp rounds d up to whole seconds. It is monotonic, so the talk time (answer to end, never
// longer than start to end) cannot round to more than the call's duration; rounding the two
// differently (duration down, billable up) once billed 2 s of a call that lasted 1 s.
func secondsUp(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }

// WriteCDR stores a finished call's record with its segments, all or nothing; DurationSec and
// BillableSec are computed from the times, and c's and its segments' IDs are filled in.
func (s *Store) WriteCDR(ctx context.Context, c *CDR) error {
	return s.WriteCDRs(ctx, []*CDR{c})
}

// insertRows is how many rows one INSERT statement carries. The pure-Go SQLite driver binds
// parameters in time quadratic in their number (it looks each one up among all the arguments): a
// 40-row INSERT of records spent more CPU binding than SQLite spent storing.
const insertRows = 16

// WriteCDRs stores several records with their segments in one transaction: INSERT statements
// of insertRows rows, which under load costs a fraction of one transaction per call. It is all or
// nothing: an invalid record fails the batch before anything is written. A record whose Key is
// already stored is not stored again (it gets the stored record's ID; its segments' IDs stay 0).
func (s *Store) WriteCDRs(ctx context.Context, cdrs []*CDR) error {
	if len(cdrs) == 0 {
		return nil
	}
	for _, c := range cdrs {
		if err := c.prepare(); err != nil {
			return err
		}
		if c.NodeID == "" {
			c.NodeID = s.opt.nodeID
		}
	}
	clearIDs(cdrs)
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	// The segments are inserted here rather than by gorm's association saving, which would
	// upsert them; the transaction is explicit because the store runs with SkipDefaultTransaction.
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		fresh, err := withoutStored(tx, cdrs)
		if err != nil || len(fresh) == 0 {
			return err
		}
		if err := tx.Omit(clause.Associations).CreateInBatches(fresh, insertRows).Error; err != nil {
			return err
		}
		var segs []*CDRSegment
		for _, c := range fresh {
			for i := range c.Segments {
				c.Segments[i].CDRID = c.ID
				segs = append(segs, &c.Segments[i])
			}
		}
		if len(segs) == 0 {
			return nil
		}
		return tx.CreateInBatches(segs, insertRows).Error
	})
	if err != nil {
		clearIDs(cdrs) // nothing was stored: IDs of rolled-back rows would name records that do not exist
		if len(cdrs) == 1 {
			return mapErr("store: write cdr "+cdrs[0].CallID, err)
		}
		return mapErr(fmt.Sprintf("store: write %d cdrs", len(cdrs)), err)
	}
	return nil
}

// withoutStored returns the records whose key is not stored yet; those already stored get their
// stored ID.
func withoutStored(tx *gorm.DB, cdrs []*CDR) ([]*CDR, error) {
	var keys []string
	for _, c := range cdrs {
		if c.Key != nil {
			keys = append(keys, *c.Key)
		}
	}
	if len(keys) == 0 {
		return cdrs, nil
	}
	var stored []struct {
		ID  int64
		Key string `gorm:"column:record_key"`
	}
	if err := tx.Model(&CDR{}).Select("id, record_key").Where("record_key IN ?", keys).Find(&stored).Error; err != nil {
		return nil, err
	}
	if len(stored) == 0 {
		return cdrs, nil
	}
	ids := make(map[string]int64, len(stored))
	for _, s := range stored {
		ids[s.Key] = s.ID
	}
	fresh := make([]*CDR, 0, len(cdrs))
	for _, c := range cdrs {
		if id, ok := ids[keyOf(c)]; ok && c.Key != nil {
			c.ID = id
			continue
		}
		fresh = append(fresh, c)
	}
	return fresh, nil
}

func keyOf(c *CDR) string {
	if c.Key == nil {
		return ""
	}
	return *c.Key
}

func clearIDs(cdrs []*CDR) {
	for _, c := range cdrs {
		c.ID = 0
		for i := range c.Segments {
			c.Segments[i].ID, c.Segments[i].CDRID = 0, 0
		}
	}
}

// CDRFilter selects call records; zero fields do not filter, and the fields given must all match.
type CDRFilter struct {
	CallID string
	Since  time.Time
	// Extension selects the calls an extension (or SIP user) took part in: as the caller, the
	// number dialled, the callee, or a party of any segment. So an agent finds the queue calls
	// they answered, and a transfer target the calls handed to them.
	Extension string
	// Until, when set, selects calls that started before it (Since <= start < Until).
	Until time.Time
	// Disposition, when set, selects calls that ended so (ErrInvalid for an unknown one).
	Disposition Disposition
	Limit       int // default 100
	Offset      int // records skipped (newest first), for paging
}

// CDRs returns the matching call records with their segments, newest first.
func (s *Store) CDRs(ctx context.Context, f CDRFilter) ([]CDR, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	q := s.db.WithContext(ctx).Preload("Segments", func(db *gorm.DB) *gorm.DB {
		return db.Order("seq")
	}).Order("start_at DESC, id DESC")
	if f.CallID != "" {
		q = q.Where("call_id = ?", f.CallID)
	}
	if !f.Since.IsZero() {
		q = q.Where("start_at >= ?", f.Since.UTC())
	}
	if !f.Until.IsZero() {
		q = q.Where("start_at < ?", f.Until.UTC())
	}
	if f.Disposition != "" {
		if !f.Disposition.valid() {
			return nil, invalid("disposition", fmt.Sprintf("%q is not one of %s", f.Disposition, dispositionList()))
		}
		q = q.Where("disposition = ?", f.Disposition)
	}
	if e := f.Extension; e != "" {
		inSegment := s.db.Model(&CDRSegment{}).Select("cdr_id").Where("caller = ? OR callee = ?", e, e)
		q = q.Where("(caller = ? OR dialled = ? OR callee = ? OR id IN (?))", e, e, e, inSegment)
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	var out []CDR
	if f.Offset > 0 {
		q = q.Offset(f.Offset)
	}
	err := q.Limit(f.Limit).Find(&out).Error
	return out, mapErr("store: list cdrs", err)
}
