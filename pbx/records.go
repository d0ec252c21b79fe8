package pbx

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/store"
)

// recordQueue writes the call core's records to the store in batches. A call's end only hands
// its record over; one goroutine writes whatever has gathered meanwhile in one transaction, so
// the BYE that ended the call is answered without waiting for the database. With a spool file
// (Config.RecordSpool) every record is on disk before the database is asked for it, and stays
// there until the database has it: records survive a database outage of any length, a shutdown
// that cannot wait for the database, and a crash, and each carries a key so that writing it again
// stores it once. Without a spool they wait in memory. While the database does not answer the
// writer retries, with a growing pause.
type recordQueue struct {
	w     store.CDRWriter
	log   *slog.Logger
	lost  prometheus.Counter
	spool *spool // nil: records wait in memory only

	mu     sync.RWMutex // WriteRecord holds it to send; close takes it to close in
	closed bool
	in     chan *store.CDR
	stop   chan struct{} // closed by close when its time is up: the writer gives up retrying
	done   chan struct{} // closed when the writer has ended

	pending    []*store.CDR // taken from in (and spooled), not yet in the database; the writer's own
	waiting    atomic.Int64 // records handed over or left in the spool, not yet written or dropped
	maxPending int          // past it the writer stops taking records: in fills, and WriteRecord loses them
}

const (
	recordQueueSize = 4096  // records handed over and not yet taken by the writer, at most
	recordPending   = 65536 // records taken and waiting for the database, at most (memory)
	recordBatch     = 256   // records per transaction at most
	// recordLinger is how long the writer waits for more records after one arrives. Each batch
	// costs a spool fsync and a transaction whatever its size: at 800 calls/s, batches of one or
	// two made the record writer a quarter of the PBX's CPU. The price is that a record spends
	// up to this long in memory only (like a call still up, it is lost if the process crashes).
	recordLinger    = 50 * time.Millisecond
	recordRetryMin  = 100 * time.Millisecond
	recordRetryMax  = 5 * time.Second  // longest pause between attempts while the database is away
	recordWriteTime = 10 * time.Second // one attempt's deadline
)

var _ b2bua.RecordWriter = (*recordQueue)(nil)

// newRecordQueue starts the writer. With spoolPath set, records left in the spool by an earlier
// run are written first.
func newRecordQueue(w store.CDRWriter, log *slog.Logger, lost prometheus.Counter, spoolPath string) (*recordQueue, error) {
	return startRecordQueue(w, log, lost, spoolPath, recordPending)
}

func startRecordQueue(w store.CDRWriter, log *slog.Logger, lost prometheus.Counter, spoolPath string, maxPending int) (*recordQueue, error) {
	q := &recordQueue{w: w, log: log, lost: lost, in: make(chan *store.CDR, recordQueueSize),
		stop: make(chan struct{}), done: make(chan struct{}), maxPending: maxPending}
	if spoolPath != "" {
		sp, left, err := openSpool(spoolPath)
		if err != nil {
			return nil, err
		}
		q.spool, q.pending = sp, left
		q.waiting.Add(int64(len(left)))
		if len(left) > 0 {
			log.Info("call records left by an earlier run will be written", "records", len(left), "spool", spoolPath)
		}
	}
	go q.run()
	return q, nil
}

// WriteRecord queues a call's record; it never waits for the database. A record that finds the
// queue full is lost, counted and logged.
func (q *recordQueue) WriteRecord(_ context.Context, r b2bua.Record) error {
	cdr := toCDR(r)
	key := rand.Text()
	cdr.Key = &key
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		q.lost.Inc()
		return errors.New("pbx: call record after shutdown: not written")
	}
	select {
	case q.in <- cdr:
		q.waiting.Add(1)
		return nil
	default:
		q.lost.Inc()
		return errors.New("pbx: call records queue full (the database is too slow or away): record lost")
	}
}

// backlog is how many records wait: handed over (or left by an earlier run) and not yet
// written or dropped.
func (q *recordQueue) backlog() int { return int(q.waiting.Load()) }

// close writes what is queued and returns when it is written, or when ctx ends: then records
// still waiting stay in the spool for the next start (without a spool they are lost and counted).
func (q *recordQueue) close(ctx context.Context) error {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.in)
	}
	q.mu.Unlock()
	var err error
	select {
	case <-q.done:
	case <-ctx.Done():
		close(q.stop)
		<-q.done
		err = ctx.Err()
	}
	if q.spool != nil {
		err = errors.Join(err, q.spool.close())
	}
	return err
}

// run takes records as they come, spools them, and writes them to the database, retrying while
// it is away, until in is closed and nothing is pending, or close gives up.
func (q *recordQueue) run() {
	defer close(q.done)
	in := q.in
	var retry <-chan time.Time
	pause := recordRetryMin
	if len(q.pending) > 0 {
		retry = time.After(0)
	}
	for in != nil || len(q.pending) > 0 {
		take := in
		if len(q.pending) >= q.maxPending {
			take = nil // full: records wait in in, and past it are lost
		}
		select {
		case c, ok := <-take:
			if !ok {
				in = nil
				continue
			}
			q.take(c)
			if retry != nil {
				continue // the database is away: the next attempt is already planned
			}
		case <-retry:
		case <-q.stop:
			q.abandon()
			return
		}
		retry = nil
		if !q.flush() {
			retry = time.After(pause)
			pause = min(2*pause, recordRetryMax)
			continue
		}
		pause = recordRetryMin
	}
}

// take adds first, and what else comes within recordLinger, to pending (up to maxPending),
// spooled: one spool write and one database transaction then serve every call that ended
// meanwhile (group commit), instead of one each.
func (q *recordQueue) take(first *store.CDR) {
	batch := []*store.CDR{first}
	limit := min(recordBatch, q.maxPending-len(q.pending))
	linger := time.NewTimer(recordLinger)
	defer linger.Stop()
	for more := true; more && len(batch) < limit; {
		select {
		case c, ok := <-q.in:
			if ok {
				batch = append(batch, c)
			} else {
				more = false
			}
		case <-linger.C:
			more = false
		case <-q.stop:
			more = false
		}
	}
	if q.spool != nil {
		if err := q.spool.append(batch); err != nil {
			q.log.Error("call records not spooled: they wait in memory only", "records", len(batch), "error", err)
		}
	}
	q.pending = append(q.pending, batch...)
}

// flush writes pending to the database, a batch at a time. It reports false when the database is
// away (pending keeps what is left); records the store refuses are dropped and counted.
func (q *recordQueue) flush() bool {
	for len(q.pending) > 0 {
		n := min(len(q.pending), recordBatch)
		if err := q.write(q.pending[:n]); err != nil {
			q.log.Warn("call records wait for the database", "records", len(q.pending), "error", err)
			return false
		}
		q.waiting.Add(-int64(n))
		q.pending = q.pending[n:]
	}
	q.pending = nil
	if q.spool != nil {
		if err := q.spool.clear(); err != nil {
			q.log.Error("record spool not emptied: its records will be written again (once)", "error", err)
		}
	}
	return true
}

// write stores one batch. A batch the store refuses as invalid is written record by record, so
// one bad record costs only itself. It returns an error only for a database that is away.
func (q *recordQueue) write(batch []*store.CDR) error {
	ctx, cancel := context.WithTimeout(context.Background(), recordWriteTime)
	err := q.w.WriteCDRs(ctx, batch)
	cancel()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, store.ErrInvalid) && len(batch) > 1:
		for _, c := range batch {
			if err := q.write([]*store.CDR{c}); err != nil {
				return err
			}
		}
		return nil
	}
	q.drop(batch, err)
	return nil
}

// abandon gives up on pending at shutdown: with a spool they stay there for the next start.
func (q *recordQueue) abandon() {
	if len(q.pending) == 0 {
		return
	}
	if q.spool != nil {
		q.log.Warn("call records left in the spool for the next start", "records", len(q.pending), "spool", q.spool.path)
		return
	}
	q.drop(q.pending, errors.New("the database did not take them before shutdown"))
	q.waiting.Add(-int64(len(q.pending)))
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
		Status: r.Status, HangupBy: r.HangupBy, Reason: r.Reason, Recording: strings.Join(r.Recordings, "\n"),
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
