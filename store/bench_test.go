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
