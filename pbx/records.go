package pbx

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/store"
)

// recordQueue writes the call core's records to the store in batches. A call's end only hands
// its record over; one goroutine writes whatever has gathered meanwhile in one transaction, so
// under load a record costs a share of a transaction instead of one of its own (at 500 calls/s
// the database write was most of a call's CPU), and the BYE that ended the call is answered
// without waiting for the database. While the database does not answer, the batch is retried
// (records wait in memory, up to recordQueueSize); at shutdown what is left is written before the
// store closes.
type recordQueue struct {
	w    store.CDRWriter
	log  *slog.Logger
	lost prometheus.Counter

	mu     sync.RWMutex // WriteRecord holds it to send; close takes it to close in
	closed bool
	in     chan *store.CDR
	stop   chan struct{} // closed by close: retries give up
	done   chan struct{} // closed when run has written everything
}

const (
	recordQueueSize = 4096             // records waiting for the database at most
	recordBatch     = 256              // records per transaction at most
	recordRetryMax  = 5 * time.Second  // longest pause between attempts while the database is away
	recordWriteTime = 10 * time.Second // one attempt's deadline
)

var _ b2bua.RecordWriter = (*recordQueue)(nil)

func newRecordQueue(w store.CDRWriter, log *slog.Logger, lost prometheus.Counter) *recordQueue {
	q := &recordQueue{w: w, log: log, lost: lost, in: make(chan *store.CDR, recordQueueSize),
		stop: make(chan struct{}), done: make(chan struct{})}
	go q.run()
	return q
}

// WriteRecord queues a call's record; it never waits for the database. A record that finds the
// queue full is lost, counted and logged.
func (q *recordQueue) WriteRecord(_ context.Context, r b2bua.Record) error {
	cdr := toCDR(r)
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		q.lost.Inc()
		return errors.New("pbx: call record after shutdown: not written")
	}
	select {
	case q.in <- cdr:
		return nil
	default:
		q.lost.Inc()
		return errors.New("pbx: call records queue full (the database is too slow or away): record lost")
	}
}

// close writes what is queued and returns when it is written or ctx ends.
func (q *recordQueue) close(ctx context.Context) error {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.in)
	}
	q.mu.Unlock()
	select {
	case <-q.done:
		return nil
	case <-ctx.Done():
		close(q.stop)
		<-q.done
		return ctx.Err()
	}
}

func (q *recordQueue) run() {
	defer close(q.done)
	for first := range q.in {
		q.write(q.gather(first))
	}
}

// gather takes first and whatever else is already waiting, up to recordBatch.
func (q *recordQueue) gather(first *store.CDR) []*store.CDR {
	batch := []*store.CDR{first}
	for len(batch) < recordBatch {
		select {
		case c, ok := <-q.in:
			if !ok {
				return batch
			}
			batch = append(batch, c)
		default:
			return batch
		}
	}
	return batch
}

// write stores a batch, retrying while the database is unavailable. A batch the store refuses
// as invalid is written record by record, so one bad record costs only itself.
func (q *recordQueue) write(batch []*store.CDR) {
	pause := 100 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), recordWriteTime)
		err := q.w.WriteCDRs(ctx, batch)
		cancel()
		switch {
		case err == nil:
			return
		case errors.Is(err, store.ErrInvalid) && len(batch) > 1:
			for _, c := range batch {
				q.write([]*store.CDR{c})
			}
			return
		case !errors.Is(err, store.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded):
			q.drop(batch, err)
			return
		}
		q.log.Warn("call records wait for the database", "records", len(batch), "error", err)
		select {
		case <-q.stop:
			q.drop(batch, err)
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, recordRetryMax)
	}
}

func (q *recordQueue) drop(batch []*store.CDR, err error) {
	q.lost.Add(float64(len(batch)))
	for _, c := range batch {
		q.log.Error("call record not written", "call_id", c.CallID, "error", err)
	}
}

// toCDR is the store's form of a call core record.
func toCDR(r b2bua.Record) *store.CDR {
	cdr := &store.CDR{
		CallID: r.CallID, Caller: r.Caller, Dialled: r.Dialled, Callee: r.Callee, Source: r.Source,
		StartAt: r.Start, EndAt: r.End, Disposition: store.Disposition(r.Disposition()),
		Status: r.Status, HangupBy: r.HangupBy, Reason: r.Reason,
		ALeg: legStats(r.MediaCaller), BLeg: legStats(r.MediaCallee),
	}
	if !r.Answer.IsZero() {
		a := r.Answer
		cdr.AnswerAt = &a
	}
	for i, seg := range r.Segments {
		cdr.Segments = append(cdr.Segments, store.CDRSegment{Seq: i, Caller: seg.Caller, Callee: seg.Callee,
			StartAt: seg.Start, EndAt: seg.End, EndReason: seg.EndReason})
	}
	return cdr
}

func legStats(m b2bua.MediaStats) store.LegStats {
	return store.LegStats{Packets: int64(m.Packets), Bytes: int64(m.Bytes), Lost: int64(m.Lost), JitterMS: m.JitterMS,
		ReportedLost: m.ReportedLost, ReportedJitterMS: m.ReportedJitterMS, RTTMS: m.RTTMS}
}
