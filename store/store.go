package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/pressly/goose/v3"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

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
		return nil, mapErr("store: open", err)
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
	if o.migrate {
		if err := s.loadBindings(ctx); err != nil {
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
		params := "_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)"
		if path != ":memory:" {
			params += "&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
		}
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		return sqlite.Open("file:" + path + sep + params), migrations.SQLite, nil
	}
	return nil, "", fmt.Errorf("store: unsupported database %q: want postgres://... or sqlite:PATH", redactDSN(dsn))
}

// redactDSN hides a password in an error message.
func redactDSN(dsn string) string {
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

// ---- extensions ----

// CreateExtension adds e. The number must be new (else ErrConflict) and the credentials set with
// SetPassword. e.ID and the time stamps are filled in.
func (s *Store) CreateExtension(ctx context.Context, e *Extension) error {
	if err := e.validate(); err != nil {
		return err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	e.ID = 0
	err := s.db.WithContext(ctx).Create(e).Error
	s.exts.invalidate(e.Number)
	if err != nil {
		return mapErr(fmt.Sprintf("store: create extension %s", e.Number), err)
	}
	s.bumpSettings(ctx)
	return nil
}

// Extension returns the extension with that number from the cache or the database.
func (s *Store) Extension(ctx context.Context, number string) (*Extension, error) {
	if ValidateNumber(number) != nil {
		return nil, fmt.Errorf("store: extension %q: %w", number, ErrNotFound)
	}
	v, found, ok, gen := s.exts.get(number)
	if ok {
		if !found {
			return nil, fmt.Errorf("store: extension %s: %w", number, ErrNotFound)
		}
		return &v, nil
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var e Extension
	err := s.db.WithContext(ctx).Where("number = ?", number).Take(&e).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		s.exts.put(number, gen, Extension{}, false)
		return nil, fmt.Errorf("store: extension %s: %w", number, ErrNotFound)
	case err != nil:
		err = mapErr("store: extension "+number, err)
		if v, ok := s.exts.stale(number); ok && errors.Is(err, ErrUnavailable) {
			return &v, nil
		}
		return nil, err
	}
	s.exts.put(number, gen, e, true)
	return &e, nil
}

// Extensions lists every extension by number.
func (s *Store) Extensions(ctx context.Context) ([]Extension, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var out []Extension
	err := s.db.WithContext(ctx).Order("number").Find(&out).Error
	return out, mapErr("store: list extensions", err)
}

// PickupGroup returns the numbers of the enabled extensions in pickup group group, in order; none
// for "".
func (s *Store) PickupGroup(ctx context.Context, group string) ([]string, error) {
	if group == "" {
		return nil, nil
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var out []string
	err := s.db.WithContext(ctx).Model(&Extension{}).Where("pickup_group = ? AND enabled = ?", group, true).
		Order("number").Pluck("number", &out).Error
	return out, mapErr("store: pickup group "+group, err)
}

// UpdateExtension applies p to the extension with that number and returns the result.
func (s *Store) UpdateExtension(ctx context.Context, number string, p ExtensionPatch) (*Extension, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var e Extension
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Clauses(s.forUpdate()...).Where("number = ?", number).Take(&e).Error; err != nil {
			return err
		}
		if err := p.apply(&e); err != nil {
			return err
		}
		return tx.Save(&e).Error
	})
	s.exts.invalidate(number)
	if errors.Is(err, ErrInvalid) {
		return nil, err
	}
	if err != nil {
		return nil, mapErr("store: update extension "+number, err)
	}
	s.bumpSettings(ctx)
	return &e, nil
}

func (s *Store) forUpdate() []clause.Expression {
	if s.dialect == migrations.Postgres {
		return []clause.Expression{clause.Locking{Strength: "UPDATE"}}
	}
	return nil
}

// DeleteExtension removes the extension with its bindings and queue memberships.
func (s *Store) DeleteExtension(ctx context.Context, number string) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	res := s.db.WithContext(ctx).Where("number = ?", number).Delete(&Extension{})
	s.exts.invalidate(number)
	s.bindings.invalidate(number)
	if res.Error != nil {
		return mapErr("store: delete extension "+number, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("store: delete extension %s: %w", number, ErrNotFound)
	}
	s.bumpSettings(ctx)
	return nil
}

// ---- registrations ----

// Bindings returns the live bindings of ext, highest q first, newest first among equals.
func (s *Store) Bindings(ctx context.Context, ext string) ([]Binding, error) {
	now := s.opt.now()
	v, _, ok, gen := s.bindings.get(ext)
	if ok {
		return liveBindings(v, now), nil
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var out []Binding
	err := s.db.WithContext(ctx).Where("extension = ? AND expires_at > ?", ext, s.now()).
		Order("q DESC, updated_at DESC, id").Find(&out).Error
	if err != nil {
		err = mapErr("store: bindings of "+ext, err)
		if v, ok := s.bindings.stale(ext); ok && errors.Is(err, ErrUnavailable) {
			return liveBindings(v, now), nil
		}
		return nil, err
	}
	s.bindings.put(ext, gen, out, true)
	return liveBindings(out, now), nil
}

// liveBindings copies the unexpired bindings, so callers never share the cached slice.
func liveBindings(bs []Binding, now time.Time) []Binding {
	out := make([]Binding, 0, len(bs))
	for _, b := range bs {
		if b.ExpiresAt.After(now) {
			out = append(out, b)
		}
	}
	return out
}

// PutBinding adds the binding or refreshes the existing one with the same extension and contact.
func (s *Store) PutBinding(ctx context.Context, b Binding) error {
	if err := b.validate(); err != nil {
		return err
	}
	now := s.now()
	b.ID = 0
	b.ExpiresAt = dbTime(b.ExpiresAt)
	b.CreatedAt, b.UpdatedAt = now, now
	if b.NodeID == "" {
		b.NodeID = s.opt.nodeID
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns: []clause.Column{{Name: "extension"}, {Name: "contact"}},
		DoUpdates: clause.AssignmentColumns([]string{
			"source", "transport", "expires_at", "call_id", "cseq", "user_agent", "q", "node_id", "updated_at",
		}),
	}).Create(&b).Error
	s.bindings.invalidate(b.Extension)
	return mapErr("store: put binding of "+b.Extension, err)
}

// DeleteBinding removes the binding of ext for contact.
func (s *Store) DeleteBinding(ctx context.Context, ext, contact string) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	err := s.db.WithContext(ctx).Where("extension = ? AND contact = ?", ext, contact).Delete(&Binding{}).Error
	s.bindings.invalidate(ext)
	return mapErr("store: delete binding of "+ext, err)
}

// DeleteBindings removes every binding of ext.
func (s *Store) DeleteBindings(ctx context.Context, ext string) (int64, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	res := s.db.WithContext(ctx).Where("extension = ?", ext).Delete(&Binding{})
	s.bindings.invalidate(ext)
	return res.RowsAffected, mapErr("store: delete bindings of "+ext, res.Error)
}

// PurgeExpired deletes expired bindings and returns how many went.
func (s *Store) PurgeExpired(ctx context.Context) (int64, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	res := s.db.WithContext(ctx).Where("expires_at <= ?", s.now()).Delete(&Binding{})
	if res.RowsAffected > 0 {
		s.bindings.invalidateAll()
	}
	return res.RowsAffected, mapErr("store: purge bindings", res.Error)
}

// LiveBindings returns every unexpired binding of every extension.
func (s *Store) LiveBindings(ctx context.Context) ([]Binding, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var out []Binding
	err := s.db.WithContext(ctx).Where("expires_at > ?", s.now()).
		Order("extension, q DESC, updated_at DESC, id").Find(&out).Error
	return out, mapErr("store: live bindings", err)
}

// loadBindings fills the binding cache after a (re)start, so the first calls to phones that
// registered before the restart are routed without a database round trip.
func (s *Store) loadBindings(ctx context.Context) error {
	gen := s.bindings.generation()
	all, err := s.LiveBindings(ctx)
	if err != nil {
		return err
	}
	byExt := make(map[string][]Binding)
	for _, b := range all {
		byExt[b.Extension] = append(byExt[b.Extension], b)
	}
	for ext, bs := range byExt {
		s.bindings.put(ext, gen, bs, true)
	}
	s.loaded.Store(int64(len(all)))
	if len(all) > 0 {
		s.opt.log.Info("store: registrations loaded", "bindings", len(all), "extensions", len(byExt))
	}
	return nil
}

// ---- queues ----
