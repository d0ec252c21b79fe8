package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/pbxkit/pbxkit/store"
)

// TestTrunks adds, lists, records the registration state of and removes trunks, on both
// databases.
func TestTrunks(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := open(t, dsn)
		tr := &store.Trunk{Name: "prov", Host: "sip.example.com:5080", Username: "acct", Password: "pw",
			Register: true, CallerID: "+4930123", Prefix: "0"}
		if err := s.CreateTrunk(ctx, tr); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateTrunk(ctx, &store.Trunk{Name: "prov", Host: "192.0.2.1"}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate name: %v", err)
		}
		if err := s.CreateTrunk(ctx, &store.Trunk{Name: "b", Host: "192.0.2.1"}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetTrunkState(ctx, "prov", "registered", "expires in 60s"); err != nil {
			t.Fatal(err)
		}
		ts, err := s.Trunks(ctx)
		if err != nil || len(ts) != 2 {
			t.Fatalf("trunks %v, %v", ts, err)
		}
		got := ts[1]
		if got.Name != "prov" || got.Host != tr.Host || got.Password != "pw" || !got.Register || got.CallerID != "+4930123" ||
			got.Prefix != "0" || got.RegState != "registered" || got.RegDetail != "expires in 60s" || got.RegAt == nil {
			t.Fatalf("stored %+v", got)
		}
		if err := s.DeleteTrunk(ctx, "prov"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteTrunk(ctx, "prov"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
	})
}

func TestTrunkValidate(t *testing.T) {
	ok := []store.Trunk{
		{Name: "a", Host: "sip.example.com"}, {Name: "a", Host: "192.0.2.1:5080"}, {Name: "a", Host: "[2001:db8::1]:5060"},
		{Name: "a", Host: "2001:db8::1"}, {Name: "a", Host: "h", Username: "u", Password: "p", Register: true},
	}
	for _, tr := range ok {
		if err := tr.Validate(); err != nil {
			t.Errorf("%+v: %v", tr, err)
		}
	}
	bad := []store.Trunk{
		{Name: "", Host: "h"}, {Name: "a b", Host: "h"}, {Name: "a", Host: ""}, {Name: "a", Host: "h:0"},
		{Name: "a", Host: "h:99999"}, {Name: "a", Host: "h:x"}, {Name: "a", Host: "bad_host!"}, {Name: "a", Host: "-h"},
		{Name: "a", Host: "h", Username: "u"}, {Name: "a", Host: "h", Password: "p"}, {Name: "a", Host: "h", Register: true},
		{Name: "a", Host: "h", Username: "u\"", Password: "p"}, {Name: "a", Host: "h", CallerID: "abc"},
		{Name: "a", Host: "h", Prefix: "9x"},
	}
	for _, tr := range bad {
		if err := tr.Validate(); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", tr, err)
		}
	}
}
