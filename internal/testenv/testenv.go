// Package testenv finds the outside services pbxkit's tests use (Postgres, sipp) and isolates
// each test from the others.
//
// A missing service skips the test with a message that says how to provide it, except when the
// environment has CI=true: there a missing service fails the test, so CI cannot pass by skipping.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"os/exec"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx" for schema set-up
)

// DefaultPostgresURL is used when PBX_TEST_DATABASE_URL is not set.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// InCI reports whether the tests run under CI (CI=true), where nothing may be skipped for a
// missing service.
func InCI() bool { return os.Getenv("CI") == "true" }

func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// PostgresURL returns the base URL of the test database.
func PostgresURL() string {
	if u := os.Getenv("PBX_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultPostgresURL
}

// PostgresDSN creates a schema of its own for this test in the test database and returns a DSN
// whose search_path is that schema. The schema is dropped when the test ends.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	base := PostgresURL()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", base)
	if err == nil {
		err = db.PingContext(ctx)
	}
	if err != nil {
		if db != nil {
			db.Close()
		}
		missing(t, "postgres at %s does not answer (%v): start it or set PBX_TEST_DATABASE_URL", base, err)
		return ""
	}
	schema := "t_" + randomHex(8)
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		db.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		db.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("PBX_TEST_DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// SQLiteDSN returns the DSN of a fresh SQLite file in the test's temporary folder.
func SQLiteDSN(t testing.TB) string {
	t.Helper()
	return "sqlite:" + t.TempDir() + "/pbx.db"
}

// Sipp returns the path of the sipp binary.
func Sipp(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("sipp")
	if err != nil {
		missing(t, "sipp is not on PATH: install it (apt-get install -y sip-tester)")
	}
	return p
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Kamailio returns the path of the kamailio binary and the folder of its modules.
func Kamailio(t testing.TB) (bin, modules string) {
	t.Helper()
	p, err := exec.LookPath("kamailio")
	if err != nil {
		missing(t, "kamailio is not on PATH: install it (apt-get install -y kamailio)")
		return "", ""
	}
	modules = "/usr/lib/x86_64-linux-gnu/kamailio/modules"
	if m := os.Getenv("KAMAILIO_MODULES"); m != "" {
		modules = m
	}
	if _, err := os.Stat(modules + "/dispatcher.so"); err != nil {
		missing(t, "kamailio's dispatcher module is not in %s: set KAMAILIO_MODULES", modules)
	}
	return p, modules
}
