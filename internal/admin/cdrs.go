package admin

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/pbxkit/pbxkit/store"
)

// Paging of GET /api/cdrs.
const (
	defaultPerPage = 50
	maxPerPage     = 500
)

// cdrView is a call record.
type cdrView struct {
	ID          int64          `json:"id"`
	CallID      string         `json:"call_id"`
	Caller      string         `json:"caller"`
	Dialled     string         `json:"dialled"`
	Callee      string         `json:"callee"`
	Start       time.Time      `json:"start"`
	Answer      *time.Time     `json:"answer,omitempty"`
	End         time.Time      `json:"end"`
	DurationSec int            `json:"duration_sec"`
	BillableSec int            `json:"billable_sec"`
	Disposition string         `json:"disposition"`
	Status      int            `json:"status"`
	HangupBy    string         `json:"hangup_by"`
	Reason      string         `json:"reason"`
	Node        string         `json:"node"`
	Recording   string         `json:"recording"` // the recording's file ("" none; one path a line)
	Segments    []segmentView  `json:"segments"`
	Media       map[string]any `json:"media"`
}

type segmentView struct {
	Caller    string    `json:"caller"`
	Callee    string    `json:"callee"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	EndReason string    `json:"end_reason"`
}

func viewCDR(c store.CDR) cdrView {
	v := cdrView{ID: c.ID, CallID: c.CallID, Caller: c.Caller, Dialled: c.Dialled, Callee: c.Callee,
		Start: c.StartAt, Answer: c.AnswerAt, End: c.EndAt, DurationSec: c.DurationSec, BillableSec: c.BillableSec,
		Disposition: string(c.Disposition), Status: c.Status, HangupBy: c.HangupBy, Reason: c.Reason, Node: c.NodeID,
		Recording: c.Recording,
		Segments:  make([]segmentView, 0, len(c.Segments)),
		Media: map[string]any{
			"caller": map[string]any{"packets": c.ALeg.Packets, "lost": c.ALeg.Lost, "jitter_ms": c.ALeg.JitterMS},
			"callee": map[string]any{"packets": c.BLeg.Packets, "lost": c.BLeg.Lost, "jitter_ms": c.BLeg.JitterMS},
		}}
	for _, s := range c.Segments {
		v.Segments = append(v.Segments, segmentView{Caller: s.Caller, Callee: s.Callee, Start: s.StartAt, End: s.EndAt, EndReason: s.EndReason})
	}
	return v
}

// cdrPage is one page of records, newest first.
type cdrPage struct {
	Page    int       `json:"page"`
	PerPage int       `json:"per_page"`
	HasMore bool      `json:"has_more"`
	Items   []cdrView `json:"items"`
}

func (s *Server) listCDRs(w http.ResponseWriter, r *http.Request) {
	f, page, perPage, err := cdrQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	cdrs, err := s.store.CDRs(r.Context(), f)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	out := cdrPage{Page: page, PerPage: perPage, Items: make([]cdrView, 0, len(cdrs))}
	if len(cdrs) > perPage {
		out.HasMore, cdrs = true, cdrs[:perPage]
	}
	for _, c := range cdrs {
		out.Items = append(out.Items, viewCDR(c))
	}
	writeJSON(w, http.StatusOK, out)
}

// cdrQuery reads from, to (RFC 3339 or YYYY-MM-DD), ext, disposition, page and per_page. The
// filter asks for one record more than the page, to tell whether another page follows.
func cdrQuery(q url.Values) (f store.CDRFilter, page, perPage int, err error) {
	if f.Since, err = timeParam(q, "from"); err != nil {
		return
	}
	if f.Until, err = timeParam(q, "to"); err != nil {
		return
	}
	if page, err = intParam(q, "page", 1, 1, 1_000_000); err != nil {
		return
	}
	if perPage, err = intParam(q, "per_page", defaultPerPage, 1, maxPerPage); err != nil {
		return
	}
	f.Extension, f.Disposition = q.Get("ext"), store.Disposition(q.Get("disposition"))
	if f.Disposition != "" && !validDisposition(f.Disposition) {
		err = fmt.Errorf("disposition %q: want answered, no_answer, busy, declined, failed or cancelled", f.Disposition)
		return
	}
	f.Limit, f.Offset = perPage+1, (page-1)*perPage
	return
}

func validDisposition(d store.Disposition) bool {
	switch d {
	case store.Answered, store.NoAnswer, store.Busy, store.Declined, store.Failed, store.Cancelled:
		return true
	}
	return false
}

// timeParam reads an RFC 3339 time or a date (midnight UTC); "" is none.
func timeParam(q url.Values, name string) (time.Time, error) {
	v := q.Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%s %q: want an RFC 3339 time (2026-12-01T09:00:00Z) or a date (2026-12-01)", name, v)
}

func intParam(q url.Values, name string, def, lo, hi int) (int, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s %q: want a whole number from %d to %d", name, v, lo, hi)
	}
	return n, nil
}
