package store

import (
	"errors"
	"testing"
)

// TestSQLiteBusyIsUnavailable: SQLite's lock errors, as the driver words them, are the database
// being unavailable (the caller retries: a call record is kept, not dropped); other errors are
// not.
func TestSQLiteBusyIsUnavailable(t *testing.T) {
	for msg, want := range map[string]bool{
		"database is locked (5) (SQLITE_BUSY)":           true,
		"database is locked (5)":                         true,
		"database table is locked (6) (SQLITE_LOCKED)":   true,
		"NOT NULL constraint failed: cdrs.caller (1299)": false,
	} {
		err := mapErr("store: write cdr", errors.New(msg))
		if got := errors.Is(err, ErrUnavailable); got != want {
			t.Errorf("%q: unavailable %v, want %v (%v)", msg, got, want, err)
		}
	}
}
