package store_test

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/icholy/digest"
	"github.com/pressly/goose/v3"

	"github.com/pbxkit/pbxkit/internal/testenv"
	"github.com/pbxkit/pbxkit/store"
)

// backend opens a fresh, isolated database of one kind.
type backend struct {
	name string
	dsn  func(t testing.TB) string
}

var backends = []backend{
	{"postgres", func(t testing.TB) string { return testenv.PostgresDSN(t) }},
	{"sqlite", func(t testing.TB) string { return testenv.SQLiteDSN(t) }},
}

// each runs fn once per backend, each in its own database.
func each(t *testing.T, fn func(t *testing.T, dsn string)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { fn(t, b.dsn(t)) })
	}
}

// testClock is a clock a test moves; the stores opened on it read their time from it.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock { return &testClock{t: time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)} }

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// twoNodes opens the stores of nodes a and b over dsn, on clock.
func twoNodes(t *testing.T, dsn string, clock *testClock) (a, b *store.Store) {
	t.Helper()
	return open(t, dsn, store.WithNodeID("a"), store.WithClock(clock.now)),
		open(t, dsn, store.WithNodeID("b"), store.WithClock(clock.now))
}

func open(t *testing.T, dsn string, opts ...store.Option) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, dsn, opts...)
	if err != nil {
		t.Fatalf("open %s: %v", dsn, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newExt(t *testing.T, number, password string) *store.Extension {
	t.Helper()
	e := &store.Extension{Number: number, Name: "Ext " + number, Enabled: true}
	if err := e.SetPassword("pbx.test", password); err != nil {
		t.Fatal(err)
	}
	return e
}

func mustCreate(t *testing.T, s *store.Store, number string) *store.Extension {
	t.Helper()
	e := newExt(t, number, "secret-"+number)
	if err := s.CreateExtension(context.Background(), e); err != nil {
		t.Fatalf("create %s: %v", number, err)
	}
	return e
}

func TestMigrationsUpDownUp(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := open(t, dsn)
		cur, latest, err := s.MigrationVersion(ctx)
		if err != nil || cur != latest || latest < 1 {
			t.Fatalf("after open: version %d of %d, %v", cur, latest, err)
		}
		mustCreate(t, s, "100")
		for v := cur; v > 0; {
			if v, err = s.MigrateDown(ctx); err != nil {
				t.Fatalf("down: %v", err)
			}
		}
		if _, err := s.MigrateDown(ctx); !errors.Is(err, goose.ErrNoNextVersion) {
			t.Fatalf("down at 0: got %v, want ErrNoNextVersion", err)
		}
		if _, err := s.Extension(ctx, "100"); err == nil {
			t.Fatal("extension still readable after every migration was rolled back")
		}
		v, err := s.MigrateUp(ctx)
		if err != nil || v != latest {
			t.Fatalf("up again: version %d, %v; want %d", v, err, latest)
		}
		mustCreate(t, s, "100")
		if _, err := s.Extension(ctx, "100"); err != nil {
			t.Fatalf("schema unusable after up-down-up: %v", err)
		}
	})
}

func TestExtensionCRUD(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := open(t, dsn)
		e := mustCreate(t, s, "201")
		if e.ID == 0 || e.CreatedAt.IsZero() {
			t.Fatalf("create did not fill id/timestamps: %+v", e)
		}
		got, err := s.Extension(ctx, "201")
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != "Ext 201" || !got.Enabled || got.Realm != "pbx.test" || got.HA1MD5 != e.HA1MD5 {
			t.Fatalf("read back %+v", got)
		}

		err = s.CreateExtension(ctx, newExt(t, "201", "other"))
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate number: got %v, want ErrConflict", err)
		}
		if err.Error() == "" || !strings.Contains(err.Error(), "201") {
			t.Fatalf("conflict error does not name the number: %q", err)
		}

		dnd, fwd, rt := true, "sip:voicemail@pbx.test", 30
		up, err := s.UpdateExtension(ctx, "201", store.ExtensionPatch{DND: &dnd, ForwardBusy: &fwd, RingTimeout: &rt})
		if err != nil {
			t.Fatal(err)
		}
		if !up.DND || up.ForwardBusy != fwd || up.RingTimeout != 30 {
			t.Fatalf("update result %+v", up)
		}
		// The update must be visible at once through the (cached) look-up.
		if got, _ := s.Extension(ctx, "201"); !got.DND || got.ForwardBusy != fwd {
			t.Fatalf("cached look-up stale after update: %+v", got)
		}
		bad := "not a target!"
		if _, err := s.UpdateExtension(ctx, "201", store.ExtensionPatch{ForwardAlways: &bad}); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("bad forward target: got %v, want ErrInvalid", err)
		}
		if _, err := s.UpdateExtension(ctx, "999", store.ExtensionPatch{DND: &dnd}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("update missing: got %v, want ErrNotFound", err)
		}

		mustCreate(t, s, "200")
		list, err := s.Extensions(ctx)
		if err != nil || len(list) != 2 || list[0].Number != "200" {
			t.Fatalf("list: %v %+v", err, list)
		}
		if err := s.DeleteExtension(ctx, "201"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Extension(ctx, "201"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("after delete: got %v, want ErrNotFound", err)
		}
		if err := s.DeleteExtension(ctx, "201"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delete twice: got %v, want ErrNotFound", err)
		}
	})
}

func TestInvalidNumbersRejected(t *testing.T) {
	s := open(t, "sqlite::memory:")
	for _, n := range []string{"", "10 1", "10@1", "<sip>", "a;b", "ä1", "1/2", string(make([]byte, 65))} {
		err := s.CreateExtension(context.Background(), newExt(t, n, "pw"))
		var ie *store.InvalidError
		if !errors.As(err, &ie) || ie.Field != "number" {
			t.Errorf("number %q: got %v, want invalid number", n, err)
		}
	}
	for _, n := range []string{"1", "alice", "sales.desk", "room-5", "x_1"} {
		if err := s.CreateExtension(context.Background(), newExt(t, n, "pw")); err != nil {
			t.Errorf("number %q: %v", n, err)
		}
	}
	e := &store.Extension{Number: "300"}
	if err := s.CreateExtension(context.Background(), e); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("extension without password: got %v, want ErrInvalid", err)
	}
}

func TestHA1(t *testing.T) {
	// RFC 2617 §3.5: Mufasa / testrealm@host.com / "Circle Of Life".
	if got := store.HA1("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life"); got != "939e7578ed9e3c518a452acee763bce9" {
		t.Fatalf("MD5 HA1 = %s", got)
	}
	// RFC 7616 §3.9.1 (SHA-256): its response is reproduced below from this HA1.
	ha1 := store.HA1("SHA-256", "Mufasa", "http-auth@example.org", "Circle of Life")
	ha2 := sha256hex("GET:/dir/index.html")
	resp := sha256hex(ha1 + ":7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v:00000001:f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ:auth:" + ha2)
	if resp != "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1" {
		t.Fatalf("SHA-256 response from HA1 = %s", resp)
	}
	if store.HA1("SHA-512-256", "a", "b", "c") != "" {
		t.Fatal("unknown algorithm gave a hash")
	}
}

// TestHA1VerifiesDigest checks the stored hashes against what a real digest client (the one
// sipgo's examples use) computes from the password, for both algorithms, through both databases.
func TestHA1VerifiesDigest(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		s := open(t, dsn)
		e := newExt(t, "301", "s3cret pass")
		if err := s.CreateExtension(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		stored, err := s.Extension(context.Background(), "301")
		if err != nil {
			t.Fatal(err)
		}
		for _, alg := range []string{"MD5", "SHA-256"} {
			chal := &digest.Challenge{Realm: "pbx.test", Nonce: "abc123", Algorithm: alg, QOP: []string{"auth"}}
			for _, pw := range []string{"s3cret pass", "wrong"} {
				cred, err := digest.Digest(chal, digest.Options{Method: "REGISTER", URI: "sip:pbx.test", Username: "301", Password: pw, Cnonce: "xyz", Count: 1})
				if err != nil {
					t.Fatal(err)
				}
				h := func(s string) string {
					if alg == "MD5" {
						sum := md5.Sum([]byte(s))
						return hex.EncodeToString(sum[:])
					}
					return sha256hex(s)
				}
				want := h(stored.HA1(alg) + ":abc123:00000001:xyz:auth:" + h("REGISTER:sip:pbx.test"))
				if ok := want == cred.Response; ok != (pw == "s3cret pass") {
					t.Errorf("%s password %q: verified=%v", alg, pw, ok)
				}
			}
		}
		if !stored.CheckPassword("s3cret pass") || stored.CheckPassword("s3cret pasS") {
			t.Error("CheckPassword")
		}
	})
}

func TestBindingExpiryAndPurge(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		clk := testenv.NewClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
		s := open(t, dsn, store.WithClock(clk.Now), store.WithNodeID("node-a"))
		mustCreate(t, s, "400")
		put := func(contact string, ttl time.Duration, q float64) {
			t.Helper()
			err := s.PutBinding(ctx, store.Binding{Extension: "400", Contact: contact, Source: "192.0.2.1:5060",
				Transport: "udp", ExpiresAt: clk.Now().Add(ttl), CallID: "c1", CSeq: 1, Q: q})
			if err != nil {
				t.Fatal(err)
			}
		}
		put("sip:400@192.0.2.1:5060", 60*time.Second, 0.5)
		put("sip:400@192.0.2.2:5060", 600*time.Second, 1.0)
		bs, err := s.Bindings(ctx, "400")
		if err != nil || len(bs) != 2 {
			t.Fatalf("bindings: %v %+v", err, bs)
		}
		if bs[0].Contact != "sip:400@192.0.2.2:5060" || bs[0].NodeID != "node-a" {
			t.Fatalf("order by q / node id: %+v", bs)
		}
		clk.Add(61 * time.Second)
		bs, _ = s.Bindings(ctx, "400")
		if len(bs) != 1 || bs[0].Contact != "sip:400@192.0.2.2:5060" {
			t.Fatalf("expired binding still served: %+v", bs)
		}
		n, err := s.PurgeExpired(ctx)
		if err != nil || n != 1 {
			t.Fatalf("purge: %d %v", n, err)
		}
		if n, _ := s.PurgeExpired(ctx); n != 0 {
			t.Fatalf("second purge removed %d", n)
		}
		// Refresh moves the expiry; delete removes; unknown extension is a foreign-key miss.
		put("sip:400@192.0.2.2:5060", 30*time.Second, 1.0)
		clk.Add(31 * time.Second)
		if bs, _ := s.Bindings(ctx, "400"); len(bs) != 0 {
			t.Fatalf("refreshed expiry not applied: %+v", bs)
		}
		put("sip:400@192.0.2.3:5060", time.Hour, 0)
		if err := s.DeleteBinding(ctx, "400", "sip:400@192.0.2.3:5060"); err != nil {
			t.Fatal(err)
		}
		if bs, _ := s.Bindings(ctx, "400"); len(bs) != 0 {
			t.Fatalf("deleted binding served: %+v", bs)
		}
		err = s.PutBinding(ctx, store.Binding{Extension: "nobody", Contact: "sip:x@y", ExpiresAt: clk.Now().Add(time.Hour)})
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("binding for unknown extension: got %v, want ErrNotFound", err)
		}
	})
}

func TestRegistrationsSurviveRestart(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s1 := open(t, dsn)
		mustCreate(t, s1, "500")
		mustCreate(t, s1, "501")
		for i, ext := range []string{"500", "500", "501"} {
			err := s1.PutBinding(ctx, store.Binding{Extension: ext, Contact: fmt.Sprintf("sip:%s@10.0.0.%d", ext, i),
				ExpiresAt: time.Now().Add(time.Hour), CallID: "cid", CSeq: uint32(i + 1)})
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := s1.PutBinding(ctx, store.Binding{Extension: "501", Contact: "sip:old@10.0.0.9",
			ExpiresAt: time.Now().Add(-time.Minute)}); err != nil {
			t.Fatal(err)
		}
		s1.Close()

		s2 := open(t, dsn) // the restarted PBX
		st := s2.Stats()
		if st.BindingsLoaded != 3 {
			t.Fatalf("loaded %d live bindings on start, want 3", st.BindingsLoaded)
		}
		bs, err := s2.Bindings(ctx, "500")
		if err != nil || len(bs) != 2 {
			t.Fatalf("after restart: %v %+v", err, bs)
		}
		if after := s2.Stats(); after.BindingHits != st.BindingHits+1 || after.BindingMisses != st.BindingMisses {
			t.Fatalf("first look-up after restart went to the database: %+v -> %+v", st, after)
		}
	})
}

func TestConcurrentReRegistration(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := open(t, dsn)
		mustCreate(t, s, "600")
		const writers, rounds, contacts = 16, 25, 4
		var wg sync.WaitGroup
		var failures atomic.Int64
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := range rounds {
					b := store.Binding{Extension: "600", Contact: fmt.Sprintf("sip:600@10.1.0.%d", (w+r)%contacts),
						ExpiresAt: time.Now().Add(time.Hour), CallID: fmt.Sprintf("w%d", w), CSeq: uint32(r)}
					if err := s.PutBinding(ctx, b); err != nil {
						t.Errorf("writer %d round %d: %v", w, r, err)
						failures.Add(1)
						return
					}
					if _, err := s.Bindings(ctx, "600"); err != nil {
						t.Errorf("read: %v", err)
					}
				}
			}()
		}
		wg.Wait()
		if failures.Load() > 0 {
			return
		}
		bs, err := s.Bindings(ctx, "600")
		if err != nil || len(bs) != contacts {
			t.Fatalf("after concurrent upserts: %v, %d bindings, want %d", err, len(bs), contacts)
		}
	})
}

func TestQueues(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := open(t, dsn)
		for _, n := range []string{"700", "701", "702"} {
			mustCreate(t, s, n)
		}
		q := &store.Queue{Name: "sales", Strategy: store.StrategyRoundRobin, MaxWait: 120, MaxLen: 10, Announce: 30, Music: "tone",
			Members: []store.QueueMember{{Extension: "701", Position: 2}, {Extension: "700", Position: 1}}}
		if err := s.CreateQueue(ctx, q); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateQueue(ctx, &store.Queue{Name: "sales"}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate queue: %v", err)
		}
		if err := s.CreateQueue(ctx, &store.Queue{Name: "bad", Strategy: "loudest"}); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("bad strategy: %v", err)
		}
		if err := s.SetQueueMember(ctx, "sales", store.QueueMember{Extension: "702", Paused: true}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetQueueMember(ctx, "sales", store.QueueMember{Extension: "701", Position: 0}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetQueueMember(ctx, "sales", store.QueueMember{Extension: "nobody"}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("member not an extension: %v", err)
		}
		got, err := s.Queue(ctx, "sales")
		if err != nil {
			t.Fatal(err)
		}
		if got.Strategy != "roundrobin" || got.MaxWait != 120 || got.Announce != 30 || len(got.Members) != 3 {
			t.Fatalf("queue %+v", got)
		}
		order := []string{got.Members[0].Extension, got.Members[1].Extension, got.Members[2].Extension}
		if fmt.Sprint(order) != "[701 702 700]" && fmt.Sprint(order) != "[702 701 700]" {
			t.Fatalf("members by position: %v", order)
		}
		if err := s.DeleteExtension(ctx, "700"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Queue(ctx, "sales"); len(got.Members) != 2 {
			t.Fatalf("deleted extension still a member: %+v", got.Members)
		}
		if err := s.RemoveQueueMember(ctx, "sales", "702"); err != nil {
			t.Fatal(err)
		}
		if err := s.RemoveQueueMember(ctx, "sales", "702"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("remove twice: %v", err)
		}
		list, err := s.Queues(ctx)
		if err != nil || len(list) != 1 || len(list[0].Members) != 1 {
			t.Fatalf("list: %v %+v", err, list)
		}
		if err := s.DeleteQueue(ctx, "sales"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Queue(ctx, "sales"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("after delete: %v", err)
		}
	})
}

// TestCacheSeesOtherWriters: a second process (the CLI) changes an extension; the server's cache
// serves the old row for at most the TTL, then the new one.
func TestCacheSeesOtherWriters(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		clk := testenv.NewClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
		cli := open(t, dsn)
		mustCreate(t, cli, "800")
		mustCreate(t, cli, "802")
		// Opened after the announced changes: its watcher starts from the version they made.
		srv := open(t, dsn, store.WithClock(clk.Now), store.WithCacheTTL(5*time.Second))
		if _, err := srv.Extension(ctx, "800"); err != nil {
			t.Fatal(err)
		}
		if _, err := srv.Extension(ctx, "801"); !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
		// Written below the API, as a writer that does not announce its changes in
		// settings_version would (those that do are seen at once: TestSettingsChangedElsewhere).
		if err := store.Exec(ctx, cli, "UPDATE extensions SET dnd = ? WHERE number = '800'", true); err != nil {
			t.Fatal(err)
		}
		if err := store.Exec(ctx, cli, "UPDATE extensions SET number = '801' WHERE number = '802'"); err != nil {
			t.Fatal(err)
		}
		if e, _ := srv.Extension(ctx, "800"); e.DND {
			t.Fatal("cache was not used within the TTL")
		}
		clk.Add(6 * time.Second)
		if e, _ := srv.Extension(ctx, "800"); !e.DND {
			t.Fatal("stale row served after the TTL")
		}
		if _, err := srv.Extension(ctx, "801"); err != nil {
			t.Fatalf("negative cache entry outlived the TTL: %v", err)
		}
	})
}

// TestUnreachableDatabase cuts the connection to Postgres with a proxy: operations fail fast with
// ErrUnavailable, and work again once the database is back, without reopening the store.
func TestUnreachableDatabase(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	u, _ := url.Parse(dsn)
	p := testenv.NewProxy(t, u.Host)
	u.Host = p.Addr()
	s := open(t, u.String(), store.WithOpTimeout(time.Second), store.WithCacheTTL(0))
	ctx := context.Background()
	mustCreate(t, s, "900")

	p.SetDown(true)
	start := time.Now()
	_, err := s.Extension(ctx, "900")
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("database down: got %v, want ErrUnavailable", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("failure took %v: not bounded by the op timeout", took)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = s.Extensions(short)
	cancel()
	if err == nil {
		t.Fatal("list succeeded with the database down")
	}

	p.SetDown(false)
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err = s.Extension(ctx, "900")
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("no reconnect after the database came back: %v", err)
	}
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestStaleWhileDatabaseAway: with the database cut, extensions and bindings looked up before
// are still served after their cache entries expired (phones keep calling each other through an
// outage); a number never looked up fails with ErrUnavailable; once the database is back, fresh
// answers return.
func TestStaleWhileDatabaseAway(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	u, _ := url.Parse(dsn)
	p := testenv.NewProxy(t, u.Host)
	u.Host = p.Addr()
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	s := open(t, u.String(), store.WithOpTimeout(time.Second), store.WithCacheTTL(5*time.Second), store.WithClock(clock))
	ctx := context.Background()
	mustCreate(t, s, "901")
	mustCreate(t, s, "902")
	if err := s.PutBinding(ctx, store.Binding{Extension: "901", Contact: "sip:901@192.0.2.1", Source: "192.0.2.1:5060",
		Transport: "udp", ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Extension(ctx, "901"); err != nil {
		t.Fatal(err)
	}
	if bs, err := s.Bindings(ctx, "901"); err != nil || len(bs) != 1 {
		t.Fatalf("bindings %v %v", bs, err)
	}

	p.SetDown(true)
	advance(time.Minute) // far past the TTL
	if e, err := s.Extension(ctx, "901"); err != nil || e.Number != "901" {
		t.Fatalf("known extension with the database away: %v %v", e, err)
	}
	if bs, err := s.Bindings(ctx, "901"); err != nil || len(bs) != 1 {
		t.Fatalf("known bindings with the database away: %v %v", bs, err)
	}
	if _, err := s.Extension(ctx, "902"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("never looked up, database away: %v, want ErrUnavailable", err)
	}
	if st := s.Stats(); st.Stale != 2 {
		t.Fatalf("stale look-ups counted: %d, want 2", st.Stale)
	}
	advance(2 * time.Hour) // stale entries are not served for ever
	if _, err := s.Extension(ctx, "901"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("two hours stale: %v, want ErrUnavailable", err)
	}
	p.SetDown(false)
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := s.Extension(ctx, "902")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no fresh answer after the database came back: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
