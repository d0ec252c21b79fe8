// Package store is pbxkit's memory: extensions, registrations (contact bindings), call detail
// records and call queues, kept through gorm in Postgres or in an embedded SQLite database.
//
// Open picks the database from the DSN and brings the schema up to date with the versioned SQL
// migrations of package migrations (applied by goose):
//
//	s, err := store.Open(ctx, "sqlite:officepbx.db")            // embedded, no server needed
//	s, err := store.Open(ctx, "postgres://pbx@db:5432/pbx")     // production
//	s, err := store.Open(ctx, "sqlite::memory:")                // tests
//
// The rest of pbxkit depends on the small interfaces Directory, Locations, CDRWriter and
// QueueDirectory, never on gorm: *Store implements all of them, and tests may supply their own.
//
// # Credentials
//
// Passwords are never stored. Extension.SetPassword keeps the digest HA1 hashes
// H(number:realm:password) for MD5 (RFC 2617) and SHA-256 (RFC 8760), which is all a registrar
// needs to check a digest response. The realm is part of the hash: moving an extension to another
// realm needs its password again.
//
// # Call records
//
// One CDR per call. Caller is who called, Dialled what they dialled (a queue, a forwarding
// extension), Callee who finally answered or was last tried. An answered call carries its
// Segments, who talked to whom from when to when, one more after each transfer. WriteCDR stores a
// record and its segments in one transaction and derives DurationSec and BillableSec, both rounded
// up to whole seconds so that the billable time never exceeds the duration. CDRs reads them back,
// newest first; CDRFilter.Extension finds every call an extension took part in, segments included.
//
// # Caching
//
// Extension look-ups (including "not found") and binding look-ups are served from memory for up to
// the cache TTL (DefaultCacheTTL, WithCacheTTL). Writes through the same Store invalidate at once;
// writes by another process, such as the officepbx CLI, are seen within the TTL.
//
// # Failures
//
// Every operation is bounded by an operation timeout (WithOpTimeout). Errors wrap ErrNotFound,
// ErrConflict, ErrInvalid (an *InvalidError naming the field) or ErrUnavailable (the database did
// not answer); the connection pool reconnects by itself when the database returns.
package store
