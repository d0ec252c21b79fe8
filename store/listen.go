package store

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pbxkit/pbxkit/migrations"
)

// On Postgres the store keeps one extra connection that LISTENs on the channel
// "pbxkit_<schema>" (migration 00012: triggers NOTIFY it when a registration, the settings
// version or the ban list changes). A notification expires the cached entries it names at once,
// so a phone that registered through another node is called at its new contact on the next call,
// and a setting changed on another node applies within the notification's delay (milliseconds),
// not the cache TTL. The settings_version poll (settings.go) keeps running beside it: it covers
// the time the listening connection is down, and SQLite, which has no NOTIFY. After the
// connection restarts every cache entry is expired, since notifications sent meanwhile are lost.
// Migration 00014 adds the changes of dialog states and watched extensions (busy lamps across
// nodes), which are told to their watchers (dialogs.go) rather than expiring a cache; after a
// restart the watchers are told that anything may have changed. Like the caches, the listening
// connection exists only with the cache on (WithCacheTTL(0) is for short-lived tools).

// listenRetry is the wait before the listening connection is opened again after it failed.
const listenRetry = time.Second

type listener struct {
	cancel    context.CancelFunc
	done      sync.WaitGroup
	listening atomic.Bool
	bans      chan struct{} // signalled (never blocks) when the ban list changed
	watched   chan struct{} // signalled (never blocks) when watched_extensions changed
	notes     atomic.Int64  // notifications received
}

// listen opens the listening connection, before Open fills the caches (so nothing has been missed
// yet), and starts the goroutine that applies notifications and opens the connection again when
// it fails; stopListening (Close) ends it.
func (s *Store) listen(ctx context.Context, dsn string) {
	l := &s.notify
	l.bans = make(chan struct{}, 1)
	l.watched = make(chan struct{}, 1)
	if s.dialect != migrations.Postgres || s.opt.cacheTTL <= 0 {
		return
	}
	conn, err := s.listenConn(ctx, dsn)
	if err != nil {
		s.opt.log.Warn("store: no change notifications; polling until they start", "error", err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.done.Add(1)
	go func() {
		defer l.done.Done()
		for {
			if conn != nil {
				l.listening.Store(true)
				err = s.serveNotifications(lctx, conn)
				l.listening.Store(false)
				closeConn(conn)
				conn = nil
				if lctx.Err() != nil {
					return
				}
				s.opt.log.Warn("store: change notifications interrupted; polling until they resume", "error", err)
			}
			select {
			case <-lctx.Done():
				return
			case <-time.After(listenRetry):
			}
			if conn, err = s.listenConn(lctx, dsn); err == nil {
				// Notifications sent while the connection was down are lost.
				s.exts.expireAll()
				s.bindings.expireAll()
				s.signalBans()
				s.signalWatched()
				s.tellDialogs("")
			}
		}
	}()
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn.Close(ctx)
}

func (s *Store) stopListening() {
	if s.notify.cancel != nil {
		s.notify.cancel()
		s.notify.done.Wait()
	}
}

// listenConn opens a connection and LISTENs on this schema's channel.
func (s *Store) listenConn(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cctx, cancel := s.opCtx(ctx)
	defer cancel()
	conn, err := pgx.Connect(cctx, dsn)
	if err != nil {
		return nil, err
	}
	var schema string
	err = conn.QueryRow(cctx, "SELECT current_schema()").Scan(&schema)
	if err == nil {
		_, err = conn.Exec(cctx, "LISTEN "+pgx.Identifier{"pbxkit_" + schema}.Sanitize())
	}
	if err != nil {
		closeConn(conn)
		return nil, err
	}
	return conn, nil
}

// serveNotifications applies notifications until the connection fails or ctx ends.
func (s *Store) serveNotifications(ctx context.Context, conn *pgx.Conn) error {
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		s.notify.notes.Add(1)
		s.applyNotification(n.Payload)
	}
}

// applyNotification expires what a notification says changed, or tells those who watch it
// (dialogs.go). Expired, not deleted: a store's own writes come back as notifications too, after
// it may have read the new rows into the cache, and an entry kept can still be served stale while
// the database is away (cache.go).
func (s *Store) applyNotification(payload string) {
	switch {
	case strings.HasPrefix(payload, "bindings:"):
		s.bindings.expire(strings.TrimPrefix(payload, "bindings:"))
	case payload == "settings_version":
		s.exts.expireAll()
	case payload == "bans":
		s.signalBans()
	case strings.HasPrefix(payload, "dialogs:"):
		s.tellDialogs(strings.TrimPrefix(payload, "dialogs:"))
	case payload == "watched":
		s.signalWatched()
	}
}

func (s *Store) signalBans() {
	select {
	case s.notify.bans <- struct{}{}:
	default:
	}
}

// Listening reports whether the store receives change notifications from the database (Postgres
// LISTEN) at the moment.
func (s *Store) Listening() bool { return s.notify.listening.Load() }

// BansChanged is signalled when another node (or this one) changed the ban list, as far as
// notifications tell; on SQLite never. Read the list again with Bans.
func (s *Store) BansChanged() <-chan struct{} { return s.notify.bans }
