package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/pressly/goose/v3"
	"golang.org/x/sync/singleflight"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/pbxkit/pbxkit/migrations"
)

// Directory looks up extensions; the registrar, auth and default routing need nothing more.
type Directory interface {
	// Extension returns the extension with that number, or an error wrapping ErrNotFound.
	Extension(ctx context.Context, number string) (*Extension, error)
}

// Locations keeps the contact bindings of registered phones (RFC 3261 §10 "location service").
type Locations interface {
	// Bindings returns the live (unexpired) bindings of ext, highest q first.
	Bindings(ctx context.Context, ext string) ([]Binding, error)
	// PutBinding adds or refreshes the binding of b.Extension and b.Contact.
	PutBinding(ctx context.Context, b Binding) error
	// DeleteBinding removes one binding; a missing one is not an error.
	DeleteBinding(ctx context.Context, ext, contact string) error
	// DeleteBindings removes every binding of ext and says how many there were.
	DeleteBindings(ctx context.Context, ext string) (int64, error)
}

// CDRWriter records finished calls: one, or several in one transaction.
type CDRWriter interface {
	WriteCDR(ctx context.Context, c *CDR) error
	WriteCDRs(ctx context.Context, cdrs []*CDR) error
}

// QueueDirectory looks up call queues with their members.
type QueueDirectory interface {
	Queue(ctx context.Context, name string) (*Queue, error)
}

// GroupDirectory looks up ring groups with their members.
type GroupDirectory interface {
	Group(ctx context.Context, number string) (*RingGroup, error)
}

// TrunkDirectory lists the outbound trunks and keeps what the PBX saw of their registrations.
type TrunkDirectory interface {
	Trunks(ctx context.Context) ([]Trunk, error)
	SetTrunkState(ctx context.Context, name, state, detail string) error
}

// Interface guards.
var (
	_ Directory      = (*Store)(nil)
	_ Locations      = (*Store)(nil)
	_ CDRWriter      = (*Store)(nil)
	_ QueueDirectory = (*Store)(nil)
	_ GroupDirectory = (*Store)(nil)
	_ TrunkDirectory = (*Store)(nil)
)

// Defaults for Options.
const (
	DefaultCacheTTL  = 5 * time.Second
	DefaultOpTimeout = 3 * time.Second
)

type options struct {
	nodeID    string
	cacheTTL  time.Duration
	opTimeout time.Duration
	log       *slog.Logger
	now       func() time.Time
	migrate   bool
}

// Option configures Open.
type Option func(*options)

// WithNodeID names this PBX node; bindings written through the store carry it.
func WithNodeID(id string) Option { return func(o *options) { o.nodeID = id } }

// WithCacheTTL sets how long a cached look-up may be served without asking the database; 0 turns
// the cache off. Writes made by other processes become visible after at most this long.
func WithCacheTTL(d time.Duration) Option { return func(o *options) { o.cacheTTL = d } }

// WithOpTimeout bounds every database operation, so that an unreachable database fails calls
// fast instead of hanging them (the caller's context can only shorten it).
func WithOpTimeout(d time.Duration) Option { return func(o *options) { o.opTimeout = d } }

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithClock replaces time.Now, for tests of expiry.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithoutMigrate opens the database without applying pending migrations.
func WithoutMigrate() Option { return func(o *options) { o.migrate = false } }

// Store is pbxkit's persistence on gorm: Postgres for production, an embedded SQLite file (or
// memory) for one-command setups and tests. It is safe for concurrent use.
type Store struct {
	db      *gorm.DB
	sqlDB   *sql.DB
	dialect string // migrations.Postgres or migrations.SQLite
	opt     options

	exts     *cache[Extension]
	bindings *cache[[]Binding]
	loaded   atomic.Int64
	closed   atomic.Bool
	settings settingsWatch
	vm       vmWatch
	dialogs  dialogWatch        // WatchDialogs callbacks (dialogs.go)
	notify   listener           // Postgres LISTEN for changes made by other nodes (listen.go)
	extFill  singleflight.Group // one database query per extension missing from the cache
}

// Open connects to dsn, applies pending migrations and loads live registrations into the cache.
//
// dsn is "postgres://user@host:port/db?sslmode=disable" (or postgresql://), "sqlite:PATH" for an
// embedded database file, or "sqlite::memory:" for a private in-memory database.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	o := options{cacheTTL: DefaultCacheTTL, opTimeout: DefaultOpTimeout, now: time.Now, migrate: true}
	for _, fn := range opts {
		fn(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	dialector, dialect, err := dialectorFor(dsn)
	if err != nil {
		return nil, err
	}
	now := o.now
	db, err := gorm.Open(dialector, &gorm.Config{
		Logger:                 newSQLLogger(o.log),
		NowFunc:                func() time.Time { return dbTime(now()) },
		SkipDefaultTransaction: true,
		TranslateError:         true,
	})
	if err != nil {
		return nil, mapErr("store: open", sqliteCantOpen(err))
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	if dialect == migrations.SQLite {
		// One connection: SQLite serialises writers anyway, ":memory:" is per connection, and a
		// single connection turns SQLITE_BUSY into plain queueing.
		sqlDB.SetMaxOpenConns(1)
		sqlDB.SetConnMaxLifetime(0)
		sqlDB.SetConnMaxIdleTime(0)
	} else {
		sqlDB.SetMaxOpenConns(32)
		sqlDB.SetMaxIdleConns(8)
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	}
	s := &Store{
		db: db, sqlDB: sqlDB, dialect: dialect, opt: o,
		exts:     newCache[Extension](o.cacheTTL, o.now),
		bindings: newCache[[]Binding](o.cacheTTL, o.now),
	}
	pingCtx, cancel := s.opCtx(ctx)
	err = sqlDB.PingContext(pingCtx)
	cancel()
	if err != nil {
		sqlDB.Close()
		return nil, mapErr("store: connect", err)
	}
	if o.migrate {
		if _, err := s.MigrateUp(ctx); err != nil {
			sqlDB.Close()
			return nil, err
		}
	}
	s.listen(ctx, dsn)
	if o.migrate {
		if err := s.loadBindings(ctx); err != nil {
			s.stopListening()
			sqlDB.Close()
			return nil, err
		}
	}
	s.watchSettings()
	return s, nil
}

func dialectorFor(dsn string) (gorm.Dialector, string, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return postgres.Open(dsn), migrations.Postgres, nil
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(dsn, "sqlite:")
		if path == "" {
			return nil, "", fmt.Errorf("store: %q names no file: want sqlite:PATH, or sqlite::memory: for a database in memory", dsn)
		}
		if err := sqliteFolder(path); err != nil {
			return nil, "", err
		}
		params := "_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)"
		if path != ":memory:" {
			// Transactions take the write lock when they begin (waiting up to the busy timeout for
			// another process's writer): a deferred one that reads and then writes fails at once
			// with SQLITE_BUSY when another process wrote meanwhile.
			params += "&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
		}
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		return sqlite.Open("file:" + path + sep + params), migrations.SQLite, nil
	}
	return nil, "", fmt.Errorf("store: unsupported database %q: want postgres://... or sqlite:PATH", RedactDSN(dsn))
}

// sqliteFolder reports a database file whose folder does not exist: SQLite itself says only
// "unable to open database file: out of memory (14)" (SQLITE_CANTOPEN).
func sqliteFolder(path string) error {
	if path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil
	}
	file, _, _ := strings.Cut(path, "?")
	dir := filepath.Dir(file)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("store: sqlite:%s: folder %s does not exist; create it first", file, dir)
	case err == nil && !fi.IsDir():
		return fmt.Errorf("store: sqlite:%s: %s is not a folder", file, dir)
	}
	return nil
}

// sqliteCantOpen words SQLite's SQLITE_CANTOPEN, which the driver reports as "out of memory
// (14)", as what it is.
func sqliteCantOpen(err error) error {
	if strings.Contains(err.Error(), "unable to open database file") && strings.Contains(err.Error(), "(14)") {
		return errors.New("cannot open the SQLite database file: check that its folder exists and that this user may write there")
	}
	return err
}

// RedactDSN hides the password of a database URL, for messages and logs.
func RedactDSN(dsn string) string {
	if i := strings.Index(dsn, "://"); i >= 0 {
		if at := strings.LastIndex(dsn, "@"); at > i {
			if c := strings.Index(dsn[i+3:at], ":"); c >= 0 {
				return dsn[:i+3+c] + ":***" + dsn[at:]
			}
		}
	}
	return dsn
}

// Close closes the database connections. It is safe to call more than once.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.stopSettings()
	s.stopListening()
	return s.sqlDB.Close()
}

// Dialect names the database: "postgres" or "sqlite".
func (s *Store) Dialect() string { return s.dialect }

// NodeID is the node name given with WithNodeID.
func (s *Store) NodeID() string { return s.opt.nodeID }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	return mapErr("store: ping", s.sqlDB.PingContext(ctx))
}

func (s *Store) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.opt.opTimeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.opt.opTimeout)
}

func (s *Store) now() time.Time { return dbTime(s.opt.now()) }

// dbTime is t as both databases keep it: UTC with microsecond precision (Postgres timestamptz),
// so that what is written compares equal to what is read back.
func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func (s *Store) goose() (*goose.Provider, error) {
	sub, err := fs.Sub(migrations.FS, s.dialect)
	if err != nil {
		return nil, fmt.Errorf("store: migrations: %w", err)
	}
	dialect := goose.DialectPostgres
	if s.dialect == migrations.SQLite {
		dialect = goose.DialectSQLite3
	}
	p, err := goose.NewProvider(dialect, s.sqlDB, sub, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return nil, fmt.Errorf("store: migrations: %w", err)
	}
	return p, nil
}

// MigrateUp applies every pending migration and returns the schema version reached.
func (s *Store) MigrateUp(ctx context.Context) (int64, error) {
	p, err := s.goose()
	if err != nil {
		return 0, err
	}
	res, err := p.Up(ctx)
	for _, r := range res {
		s.opt.log.Info("store: migration applied", "version", r.Source.Version, "direction", "up", "took", r.Duration)
	}
	if err != nil {
		return 0, mapErr("store: migrate up", err)
	}
	s.invalidateAll()
	v, err := p.GetDBVersion(ctx)
	return v, mapErr("store: migrate up", err)
}

// MigrateDown rolls the newest applied migration back and returns the version left. At version 0
// it returns an error wrapping goose.ErrNoNextVersion.
func (s *Store) MigrateDown(ctx context.Context) (int64, error) {
	p, err := s.goose()
	if err != nil {
		return 0, err
	}
	r, err := p.Down(ctx)
	if err != nil {
		return 0, mapErr("store: migrate down", err)
	}
	s.opt.log.Info("store: migration rolled back", "version", r.Source.Version)
	s.invalidateAll()
	v, err := p.GetDBVersion(ctx)
	return v, mapErr("store: migrate down", err)
}

// MigrationVersion returns the schema version of the database and the newest one this binary has.
func (s *Store) MigrationVersion(ctx context.Context) (current, latest int64, err error) {
	p, err := s.goose()
	if err != nil {
		return 0, 0, err
	}
	current, latest, err = p.GetVersions(ctx)
	return current, latest, mapErr("store: migration version", err)
}

func (s *Store) invalidateAll() {
	s.exts.invalidateAll()
	s.bindings.invalidateAll()
}

// Stats counts cache use, for metrics and tests.
type Stats struct {
	ExtensionHits, ExtensionMisses int64
	BindingHits, BindingMisses     int64
	BindingsLoaded                 int64 // live bindings loaded into the cache by Open
	// Stale counts look-ups served from expired cache entries while the database was away.
	Stale int64
}

// Stats returns the cache counters.
func (s *Store) Stats() Stats {
	return Stats{
		ExtensionHits: s.exts.hits.Load(), ExtensionMisses: s.exts.misses.Load(),
		BindingHits: s.bindings.hits.Load(), BindingMisses: s.bindings.misses.Load(),
		BindingsLoaded: s.loaded.Load(), Stale: s.exts.stales.Load() + s.bindings.stales.Load(),
	}
}
