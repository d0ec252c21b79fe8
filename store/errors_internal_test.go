package store

import (
	"errors"
	"fmt"
	"testing"
)

// sqliteErr stands for the SQLite driver's error: a message and a result code.
type sqliteErr struct {
	msg  string
	code int
}

func (e *sqliteErr) Error() string { return e.msg }
func (e *sqliteErr) Code() int     { return e.code }

// TestSQLiteBusyIsUnavailable: SQLite's lock errors, by result code (extended codes too) or as
// the driver words them, are the database being unavailable (the caller retries: a call record
// is kept, not dropped); other errors are not.
func TestSQLiteBusyIsUnavailable(t *testing.T) {
	for name, c := range map[string]struct {
		err  error
		want bool
	}{
		"busy":          {&sqliteErr{"database is locked (5) (SQLITE_BUSY)", 5}, true},
		"busy snapshot": {&sqliteErr{"database is locked (517)", 517}, true},
		"table locked":  {fmt.Errorf("exec: %w", &sqliteErr{"database table is locked: cdrs (6)", 6}), true},
		"text only":     {errors.New("database is locked (5)"), true},
		"constraint":    {&sqliteErr{"NOT NULL constraint failed: cdrs.caller (1299)", 1299}, false},
		"plain":         {errors.New("no such table: cdrs"), false},
	} {
		err := mapErr("store: write cdr", c.err)
		if got := errors.Is(err, ErrUnavailable); got != c.want {
			t.Errorf("%s: unavailable %v, want %v (%v)", name, got, c.want, err)
		}
	}
}
