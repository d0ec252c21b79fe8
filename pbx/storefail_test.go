package pbx_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// failingStore answers every call with err, as a broken or unreachable database would.
type failingStore struct{ err error }

func (f failingStore) Extension(context.Context, string) (*store.Extension, error) { return nil, f.err }
func (f failingStore) Bindings(context.Context, string) ([]store.Binding, error)   { return nil, f.err }
func (f failingStore) PutBinding(context.Context, store.Binding) error             { return f.err }
func (f failingStore) DeleteBinding(context.Context, string, string) error         { return f.err }
func (f failingStore) DeleteBindings(context.Context, string) (int64, error)       { return 0, f.err }
func (f failingStore) PurgeExpired(context.Context) (int64, error)                 { return 0, f.err }

func TestStoreFailuresAnswered(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	for _, tc := range []struct {
		name   string
		err    error
		code   int
		reason string
		header string
	}{
		{"unavailable", fmt.Errorf("store: extension 100: %w", store.ErrUnavailable), 503, "Service Unavailable", "Retry-After"},
		{"broken", errors.New("disk on fire"), 500, "Server Internal Error", ""},
		{"no such extension", fmt.Errorf("store: extension 100: %w", store.ErrNotFound), 404, "Not Found", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := startPBX(t, pbx.Config{Trusted: trusted}, pbx.WithStore(failingStore{tc.err}))
			c := newClient(t, tp.addr)
			res := c.Do(c.Build(registerSpec("100", "fail-"+tc.name, 1, "Contact: <sip:100@10.0.0.1>")))
			if res.StatusCode != tc.code || res.Reason != tc.reason {
				t.Fatalf("got %d %s, want %d %s", res.StatusCode, res.Reason, tc.code, tc.reason)
			}
			if tc.header != "" && res.GetHeader(tc.header) == nil {
				t.Fatalf("no %s:\n%s", tc.header, res)
			}
		})
	}
	// Untrusted: the digest check needs the store too.
	tp := startPBX(t, pbx.Config{}, pbx.WithStore(failingStore{fmt.Errorf("x: %w", store.ErrUnavailable)}))
	c := newClient(t, tp.addr)
	r := registerSpec("100", "fail-auth", 1, "Contact: <sip:100@10.0.0.1>")
	chal := c.Do(c.Build(r))
	r.CSeq = 2
	r.Headers = append(r.Headers, authorize(t, chal, r, "100", "pw", "MD5"))
	if res := c.Do(c.Build(r)); res.StatusCode != 503 {
		t.Fatalf("auth with the store down: %d, want 503", res.StatusCode)
	}
}
