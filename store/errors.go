package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
)

// Sentinel errors; test with errors.Is. Their texts carry no prefix: the store always wraps them
// with what it was doing ("store: extension 100: not found").
var (
	// ErrNotFound: no extension, binding, queue or record with that key.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the key (extension number, queue name, queue member) exists already.
	ErrConflict = errors.New("already exists")
	// ErrInvalid: a value failed validation; the error is an *InvalidError naming the field.
	ErrInvalid = errors.New("invalid value")
	// ErrUnavailable: the database did not answer in time or the connection failed. Callers turn
	// it into 503 / 500 answers; the store reconnects by itself.
	ErrUnavailable = errors.New("database unavailable")
)

// InvalidError says which field of a value is wrong and why.
type InvalidError struct {
	Field string
	Msg   string
}

func (e *InvalidError) Error() string { return fmt.Sprintf("invalid %s: %s", e.Field, e.Msg) }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, msg string) error { return &InvalidError{Field: field, Msg: msg} }

// mapErr turns driver errors into the store's sentinels, keeping the original in the chain.
func mapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	case isUniqueViolation(err):
		return fmt.Errorf("%s: %w", op, ErrConflict)
	case isForeignKeyViolation(err):
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	case isUnavailable(err):
		return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func isUniqueViolation(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "23505"
	}
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return true
	}
	// modernc/glebarez SQLite: "constraint failed: UNIQUE constraint failed: ... (2067)".
	return strings.Contains(err.Error(), "UNIQUE constraint failed")
}

func isForeignKeyViolation(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "23503"
	}
	return errors.Is(err, gorm.ErrForeignKeyViolated) || strings.Contains(err.Error(), "FOREIGN KEY constraint failed")
}

func isUnavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, driver.ErrBadConn) {
		return true
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		// Class 08: connection exception; 57P01-03: admin shutdown, crash shutdown, cannot connect now.
		return strings.HasPrefix(pg.Code, "08") || strings.HasPrefix(pg.Code, "57P0")
	}
	return pgconn.SafeToRetry(err) || strings.Contains(err.Error(), "conn closed") ||
		strings.Contains(err.Error(), "unexpected EOF") || isSQLiteBusy(err)
}

// isSQLiteBusy reports SQLite's SQLITE_BUSY (5, "database is locked") and SQLITE_LOCKED (6,
// "database table is locked"), extended codes included: another process held the file longer
// than the busy timeout. The write may succeed later; it is not the value's fault.
func isSQLiteBusy(err error) bool {
	var coded interface{ Code() int } // the SQLite driver's *sqlite.Error
	if errors.As(err, &coded) {
		if primary := coded.Code() & 0xff; primary == 5 || primary == 6 {
			return true
		}
	}
	msg := err.Error()
	return strings.Contains(msg, "database is locked") || strings.Contains(msg, "database table is locked")
}
