package pbx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/store"
)

// fakeRecords is a CDRWriter that fails as told: the first `away` attempts as an unreachable
// database, and every batch holding the call "bad" as invalid.
type fakeRecords struct {
	mu      sync.Mutex
	away    int
	batches [][]string
	written map[string]bool
}

func (f *fakeRecords) WriteCDR(ctx context.Context, c *store.CDR) error {
	return f.WriteCDRs(ctx, []*store.CDR{c})
}

func (f *fakeRecords) WriteCDRs(_ context.Context, cdrs []*store.CDR) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.away > 0 {
		f.away--
		return fmt.Errorf("fake: %w", store.ErrUnavailable)
	}
	var ids []string
	for _, c := range cdrs {
		if c.CallID == "bad" {
			return fmt.Errorf("fake: %w", store.ErrInvalid)
		}
		if c.Key == nil {
			return errors.New("fake: a record without key")
		}
		ids = append(ids, c.CallID)
	}
	f.batches = append(f.batches, ids)
	for _, id := range ids {
		f.written[id] = true
	}
	return nil
}

func (f *fakeRecords) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.written)
}

func record(id string) b2bua.Record {
	now := time.Now()
	return b2bua.Record{CallID: id, Caller: "100", Callee: "200", Start: now, End: now, Status: 486}
}

func newTestQueue(f *fakeRecords, spool ...string) (*recordQueue, prometheus.Counter) {
	lost := prometheus.NewCounter(prometheus.CounterOpts{Name: "lost"})
	q, err := newRecordQueue(f, slog.New(slog.DiscardHandler), lost, strings.Join(spool, ""))
	if err != nil {
		panic(err)
	}
	return q, lost
}

// TestRecordQueueWaitsForTheDatabase: while the database is away, records wait and are retried;
// they are all written once it answers, and close waits for them.
func TestRecordQueueWaitsForTheDatabase(t *testing.T) {
	f := &fakeRecords{away: 3, written: map[string]bool{}}
	q, lost := newTestQueue(f)
	for i := range 50 {
		if err := q.WriteRecord(context.Background(), record(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := f.count(); n != 50 || testutil.ToFloat64(lost) != 0 {
		t.Fatalf("%d of 50 records written, %v lost", n, testutil.ToFloat64(lost))
	}
	if len(f.batches) >= 50 {
		t.Fatalf("%d transactions for 50 records: not batched", len(f.batches))
	}
	if n := q.backlog(); n != 0 {
		t.Fatalf("backlog %d after every record was written", n)
	}
	if err := q.WriteRecord(context.Background(), record("late")); err == nil || testutil.ToFloat64(lost) != 1 {
		t.Fatalf("a record after close: %v, lost %v", err, testutil.ToFloat64(lost))
	}
}

// TestRecordQueueInvalidRecord: a batch the store refuses as invalid is written record by record:
// only the bad one is lost.
func TestRecordQueueInvalidRecord(t *testing.T) {
	f := &fakeRecords{away: 1, written: map[string]bool{}} // the first attempt fails: all three in one batch
	q, lost := newTestQueue(f)
	for _, id := range []string{"a", "bad", "b"} {
		q.WriteRecord(context.Background(), record(id))
	}
	q.close(context.Background())
	if !f.written["a"] || !f.written["b"] || f.written["bad"] || testutil.ToFloat64(lost) != 1 || q.backlog() != 0 {
		t.Fatalf("written %v, lost %v, backlog %d", f.written, testutil.ToFloat64(lost), q.backlog())
	}
}

// TestRecordQueueGivesUpAtShutdown: a database that never comes back does not hold shutdown past
// its deadline; without a spool the records are counted as lost.
func TestRecordQueueGivesUpAtShutdown(t *testing.T) {
	f := &fakeRecords{away: 1 << 30, written: map[string]bool{}}
	q, lost := newTestQueue(f)
	q.WriteRecord(context.Background(), record("x"))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := q.close(ctx); !errors.Is(err, context.DeadlineExceeded) || testutil.ToFloat64(lost) != 1 {
		t.Fatalf("close: %v, lost %v", err, testutil.ToFloat64(lost))
	}
}

// TestRecordQueueFull: once the writer holds its most records and recordQueueSize more wait, a
// record is lost at once rather than holding up the call that ended.
func TestRecordQueueFull(t *testing.T) {
	f := &fakeRecords{away: 1 << 30, written: map[string]bool{}}
	lost := prometheus.NewCounter(prometheus.CounterOpts{Name: "lost"})
	q, err := startRecordQueue(f, slog.New(slog.DiscardHandler), lost, "", recordBatch)
	if err != nil {
		t.Fatal(err)
	}
	var refused int
	for i := range recordQueueSize + recordBatch + 10 {
		if q.WriteRecord(context.Background(), record(fmt.Sprint(i))) != nil {
			refused++
		}
	}
	if refused == 0 || testutil.ToFloat64(lost) != float64(refused) {
		t.Fatalf("%d refused, %v counted lost", refused, testutil.ToFloat64(lost))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	q.close(ctx)
}

// TestRecordQueueSpool: with a spool, records the database did not take before shutdown stay on
// disk, nothing is counted lost, and the next queue on the same spool writes them first, with the
// keys they had; the spool is empty afterwards.
func TestRecordQueueSpool(t *testing.T) {
	path := filepath.Join(t.TempDir(), "records.spool")
	away := &fakeRecords{away: 1 << 30, written: map[string]bool{}}
	q, lost := newTestQueue(away, path)
	for _, id := range []string{"x", "y", "z"} {
		q.WriteRecord(context.Background(), record(id))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := q.close(ctx); !errors.Is(err, context.DeadlineExceeded) || testutil.ToFloat64(lost) != 0 {
		t.Fatalf("close: %v, lost %v", err, testutil.ToFloat64(lost))
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	left, err := readSpool(f)
	f.Close()
	if err != nil || len(left) != 3 || left[0].Key == nil {
		t.Fatalf("spool after shutdown: %d records (%v)", len(left), err)
	}

	back := &fakeRecords{written: map[string]bool{}}
	q2, lost2 := newTestQueue(back, path)
	q2.WriteRecord(context.Background(), record("w"))
	if err := q2.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(back.written) != 4 || testutil.ToFloat64(lost2) != 0 {
		t.Fatalf("after restart: written %v, lost %v", back.written, testutil.ToFloat64(lost2))
	}
	if first := back.batches[0]; len(first) < 3 || strings.Join(first[:3], "") != "xyz" {
		t.Fatalf("the spooled records were not written first: %v", back.batches)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
		t.Fatalf("spool not emptied: %v %v", fi, err)
	}
}

// TestRecordQueueTornSpool: a last line torn by a crash is skipped, the rest is written.
func TestRecordQueueTornSpool(t *testing.T) {
	path := filepath.Join(t.TempDir(), "records.spool")
	whole := `{"CallID":"ok","Caller":"100","Callee":"200","StartAt":"2026-11-30T10:00:00Z","EndAt":"2026-11-30T10:00:01Z","Disposition":"busy","Status":486,"Key":"k1"}`
	if err := os.WriteFile(path, []byte(whole+"\n"+`{"CallID":"torn","Cal`), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &fakeRecords{written: map[string]bool{}}
	q, _ := newTestQueue(f, path)
	if err := q.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !f.written["ok"] || len(f.written) != 1 {
		t.Fatalf("written %v", f.written)
	}
}

// TestSpoolLockedAgainstSecondProcess: a second PBX on the same spool is refused with a message
// that says so (flock locks conflict between open files, in one process as between two); the
// spool is free again once the first lets go of it.
func TestSpoolLockedAgainstSecondProcess(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no flock on windows")
	}
	path := filepath.Join(t.TempDir(), "records.spool")
	first, _, err := openSpool(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := openSpool(path); !errors.Is(err, errSpoolInUse) || !strings.Contains(err.Error(), "--record-spool") {
		t.Fatalf("second open of a spool in use: %v", err)
	}
	if err := first.close(); err != nil {
		t.Fatal(err)
	}
	again, _, err := openSpool(path)
	if err != nil {
		t.Fatalf("open after the first closed: %v", err)
	}
	again.close()
}

// TestRecordingsDirDefault: call recordings go into the data directory unless told otherwise;
// the folder is absolute (without a DataDir: recordings in the working directory).
func TestRecordingsDirDefault(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ data, rec, want string }{
		{"/var/lib/officepbx/data", "", "/var/lib/officepbx/data/recordings"},
		{"", "", filepath.Join(wd, "recordings")},
		{"data", "", filepath.Join(wd, "data", "recordings")},
		{"/d", "rec", filepath.Join(wd, "rec")},
		{"/d", "/srv/rec", "/srv/rec"},
	} {
		if got := (Config{DataDir: tc.data, RecordingsDir: tc.rec}).withDefaults().RecordingsDir; got != tc.want {
			t.Errorf("DataDir %q, RecordingsDir %q: recordings in %q, want %q", tc.data, tc.rec, got, tc.want)
		}
	}
}
