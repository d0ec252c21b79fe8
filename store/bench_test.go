package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/store"
)

// BenchmarkExtensionLookup compares the cached look-up a call makes with an uncached one
// (WithCacheTTL(0)), per backend.
func BenchmarkExtensionLookup(b *testing.B) {
	for _, be := range backends {
		for _, cached := range []bool{true, false} {
			name := fmt.Sprintf("%s/cached=%v", be.name, cached)
			b.Run(name, func(b *testing.B) {
				dsn := be.dsn(b)
				opts := []store.Option{store.WithCacheTTL(time.Hour)}
				if !cached {
					opts = []store.Option{store.WithCacheTTL(0)}
				}
				s := benchStore(b, dsn, opts...)
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if _, err := s.Extension(ctx, "100"); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkBindingWrite measures a REGISTER refresh: one upsert of an existing binding.
func BenchmarkBindingWrite(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			s := benchStore(b, be.dsn(b))
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				err := s.PutBinding(ctx, store.Binding{Extension: "100", Contact: fmt.Sprintf("sip:100@10.0.0.%d", i%4),
					ExpiresAt: time.Now().Add(time.Hour), CallID: "bench", CSeq: uint32(i)})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchStore opens dsn with extension 100 in it; it is closed when the benchmark ends.
func benchStore(b *testing.B, dsn string, opts ...store.Option) *store.Store {
	b.Helper()
	s, err := store.Open(context.Background(), dsn, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	e := &store.Extension{Number: "100", Enabled: true}
	if err := e.SetPassword("pbx", "pw"); err != nil {
		b.Fatal(err)
	}
	if err := s.CreateExtension(context.Background(), e); err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkWriteCDRs measures storing call records the way the PBX's record writer does: a batch
// of answered calls (two segments each, with keys) in one WriteCDRs. ns/op is per record.
func BenchmarkWriteCDRs(b *testing.B) {
	for _, be := range backends {
		for _, size := range []int{1, 8, 40, 200} {
			b.Run(fmt.Sprintf("%s/batch=%d", be.name, size), func(b *testing.B) {
				s := benchStore(b, be.dsn(b))
				ctx := context.Background()
				b.ReportAllocs()
				n := 0
				for b.Loop() {
					if n%size == 0 {
						if err := s.WriteCDRs(ctx, benchRecords(n, size)); err != nil {
							b.Fatal(err)
						}
					}
					n++
				}
			})
		}
	}
}

func benchRecords(first, n int) []*store.CDR {
	start := time.Now().Add(-time.Minute)
	answer, end := start.Add(2*time.Second), start.Add(30*time.Second)
	cdrs := make([]*store.CDR, n)
	for i := range cdrs {
		key := fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), first+i)
		cdrs[i] = &store.CDR{Key: &key, CallID: key, Caller: "100", Dialled: "200", Callee: "200",
			Source: "127.0.0.1:5062", StartAt: start, AnswerAt: &answer, EndAt: end,
			Disposition: store.Answered, Status: 200, HangupBy: "caller", Reason: "bye",
			Segments: []store.CDRSegment{
				{Seq: 0, Caller: "100", Callee: "200", StartAt: answer, EndAt: answer.Add(10 * time.Second), EndReason: "transfer"},
				{Seq: 1, Caller: "100", Callee: "201", StartAt: answer.Add(10 * time.Second), EndAt: end, EndReason: "bye"}}}
	}
	return cdrs
}
