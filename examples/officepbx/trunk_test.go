package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/pbxkit/pbxkit/internal/testenv"
)

// TestCLITrunks adds, lists and removes trunks on both databases; bad input (no host, a bad
// host or port, a user without password, an unknown trunk, a name taken) exits with status 2
// and says why.
func TestCLITrunks(t *testing.T) {
	for name, dsn := range map[string]func(testing.TB) string{"sqlite": testenv.SQLiteDSN, "postgres": testenv.PostgresDSN} {
		t.Run(name, func(t *testing.T) {
			db := dsn(t)
			steps := []struct {
				args   []string
				code   int
				stdout string // regexp
				stderr string // substring
			}{
				{[]string{"trunk", "add", "prov", "--host", "sip.example.com:5080", "--user", "acct", "--password", "pw",
					"--register", "--caller-id", "+4930123", "--prefix", "0", "--db", db}, 0, "trunk prov added", ""},
				{[]string{"trunk", "add", "--db", db, "backup", "--host", "192.0.2.7"}, 0, "trunk backup added", ""},
				{[]string{"trunk", "add", "prov", "--host", "192.0.2.8", "--db", db}, 2, "", "trunk prov already exists"},
				{[]string{"trunk", "add", "x", "--db", db}, 2, "", "--host is required"},
				{[]string{"trunk", "add", "x", "--host", "bad host!", "--db", db}, 2, "", `invalid host: "bad host!" is not a host name or IP address`},
				{[]string{"trunk", "add", "x", "--host", "h.example:70000", "--db", db}, 2, "", "the port must be 1-65535"},
				{[]string{"trunk", "add", "x", "--host", "h.example", "--user", "u", "--db", db}, 2, "", "a user needs a password"},
				{[]string{"trunk", "add", "x", "--host", "h.example", "--register", "--db", db}, 2, "", "registering needs a user and a password"},
				{[]string{"trunk", "add", "x", "--host", "h.example", "--caller-id", "alice", "--db", db}, 2, "", "invalid caller_id"},
				{[]string{"trunk", "add", "--host", "h.example", "--db", db}, 2, "", "want exactly one trunk name"},
				{[]string{"trunk", "list", "--db", db}, 0,
					`(?m)^backup\s+192\.0\.2\.7\s+-\s+off\s+-\s+-\s+-\n(.*\n)?prov\s+sip\.example\.com:5080\s+acct\s+on\s+\+4930123\s+0\s+not yet registered$`, ""},
				{[]string{"trunk", "rm", "backup", "--db", db}, 0, "trunk backup removed", ""},
				{[]string{"trunk", "rm", "backup", "--db", db}, 2, "", "no trunk backup"},
				{[]string{"trunk", "frob", "--db", db}, 2, "", ""},
			}
			for _, s := range steps {
				code, out, errs := officepbx(t, s.args...)
				if code != s.code {
					t.Fatalf("%v: exit %d, want %d\nstdout: %s\nstderr: %s", s.args, code, s.code, out, errs)
				}
				if s.stdout != "" && !regexp.MustCompile(s.stdout).MatchString(out) {
					t.Fatalf("%v: stdout %q does not match %q", s.args, out, s.stdout)
				}
				if !strings.Contains(errs, s.stderr) {
					t.Fatalf("%v: stderr %q does not contain %q", s.args, errs, s.stderr)
				}
			}
		})
	}
}
