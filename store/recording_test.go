package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/store"
)

// TestRecordingColumns: a call record keeps the recording's path, an extension its record
// setting (created, patched, read back through the cache and the list); migration 10 down drops
// both columns and up brings them back empty.
func TestRecordingColumns(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := open(t, dsn)
		start := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
		a := start.Add(time.Second)
		c := store.CDR{CallID: "rec-1", Caller: "100", Dialled: "101", Callee: "101", StartAt: start, AnswerAt: &a,
			EndAt: start.Add(time.Minute), Disposition: store.Answered, Status: 200,
			Recording: "/var/lib/officepbx/recordings/20261130T100001.000Z-rec-1.wav"}
		if err := s.WriteCDR(ctx, &c); err != nil {
			t.Fatal(err)
		}
		plain := store.CDR{CallID: "rec-2", Caller: "100", Callee: "102", StartAt: start, EndAt: start, Disposition: store.Busy, Status: 486}
		if err := s.WriteCDR(ctx, &plain); err != nil {
			t.Fatal(err)
		}
		for id, want := range map[string]string{"rec-1": c.Recording, "rec-2": ""} {
			out, err := s.CDRs(ctx, store.CDRFilter{CallID: id})
			if err != nil || len(out) != 1 || out[0].Recording != want {
				t.Fatalf("%s read back: %v %+v; want recording %q", id, err, out, want)
			}
		}

		e := mustCreate(t, s, "100")
		if e.Record {
			t.Fatal("a new extension records its calls")
		}
		on := true
		if got, err := s.UpdateExtension(ctx, "100", store.ExtensionPatch{Record: &on}); err != nil || !got.Record {
			t.Fatalf("patch record on: %v %+v", err, got)
		}
		if got, err := s.Extension(ctx, "100"); err != nil || !got.Record {
			t.Fatalf("read back: %v %+v", err, got)
		}
		if list, err := s.Extensions(ctx); err != nil || len(list) != 1 || !list[0].Record {
			t.Fatalf("list: %v %+v", err, list)
		}

		_, latest, err := s.MigrationVersion(ctx)
		if err != nil || latest < 10 {
			t.Fatalf("latest migration %d, %v", latest, err)
		}
		for v := latest; v > 9; v-- {
			if _, err := s.MigrateDown(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := store.Count(ctx, s, "SELECT count(*) FROM cdrs WHERE recording = ''"); err == nil {
			t.Fatal("cdrs.recording still there at version 9")
		}
		if _, err := store.Count(ctx, s, "SELECT count(*) FROM extensions WHERE record"); err == nil {
			t.Fatal("extensions.record still there at version 9")
		}
		if _, err := s.MigrateUp(ctx); err != nil {
			t.Fatal(err)
		}
		if n, err := store.Count(ctx, s, "SELECT count(*) FROM cdrs WHERE recording = ''"); err != nil || n != 2 {
			t.Fatalf("records without recording after up: %d %v", n, err)
		}
	})
}
