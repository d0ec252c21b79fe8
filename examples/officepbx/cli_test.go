package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/internal/testenv"
	"github.com/pbxkit/pbxkit/migrations"
	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// officepbx runs the program in-process, in a directory of its own (files it makes by default,
// such as officepbx.records, must not land in the source tree), and returns exit status, stdout
// and stderr. A serve that was meant to fail but starts is stopped after a while, so the test
// fails instead of hanging.
func officepbx(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	t.Chdir(t.TempDir())
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	code := run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCLIExtensions(t *testing.T) {
	latest := latestMigration(t)
	for name, dsn := range map[string]func(testing.TB) string{"sqlite": testenv.SQLiteDSN, "postgres": testenv.PostgresDSN} {
		t.Run(name, func(t *testing.T) {
			db := dsn(t)
			steps := []struct {
				args   []string
				code   int
				stdout string // regexp
				stderr string // substring
			}{
				{[]string{"ext", "add", "100", "--password", "pw", "--name", "Alice", "--db", db}, 0, "extension 100 added", ""},
				{[]string{"ext", "add", "--db", db, "101", "--password", "pw"}, 0, "extension 101 added", ""},
				{[]string{"ext", "add", "100", "--password", "pw", "--db", db}, 1, "", "extension 100 already exists"},
				{[]string{"ext", "add", "10 1", "--password", "pw", "--db", db}, 1, "", `invalid number: "10 1" may contain only digits`},
				{[]string{"ext", "add", "102", "--db", db}, 2, "", "--password is required"},
				{[]string{"ext", "add", "--password", "pw", "--db", db}, 2, "", "want exactly one extension number"},
				{[]string{"ext", "set", "100", "--dnd", "on", "--forward-busy", "101", "--ring-timeout", "25", "--db", db}, 0, "extension 100 updated", ""},
				{[]string{"ext", "set", "100", "--dnd", "maybe", "--db", db}, 2, "", `invalid value "maybe" for flag -dnd: want on or off`},
				{[]string{"ext", "set", "100", "--forward-always", "no good!", "--db", db}, 1, "", "neither an extension number nor a sip: URI"},
				{[]string{"ext", "set", "100", "--db", db}, 2, "", "nothing to change"},
				{[]string{"ext", "set", "999", "--dnd", "on", "--db", db}, 1, "", "no extension 999"},
				{[]string{"ext", "set", "101", "--record", "on", "--db", db}, 0, "extension 101 updated", ""},
				{[]string{"ext", "set", "101", "--record", "always", "--db", db}, 2, "", `invalid value "always" for flag -record: want on or off`},
				{[]string{"ext", "list", "--db", db}, 0, `(?m)^100\s+Alice\s+on\s+on\s+-\s+101\s+-\s+off\s+off\s+-\n101\s+on\s+off\s+-\s+-\s+-\s+on\s+off\s+-$`, ""},
				{[]string{"ext", "rm", "101", "--db", db}, 0, "extension 101 removed", ""},
				{[]string{"ext", "rm", "101", "--db", db}, 1, "", "no extension 101"},
				{[]string{"queue", "add", "sales", "--member", "100,nobody", "--db", db}, 1, "", "member nobody is not an extension"},
				{[]string{"queue", "add", "sales", "--member", "100", "--strategy", "loudest", "--db", db}, 2, "", `--strategy "loudest": want one of ringall, roundrobin`},
				{[]string{"queue", "add", "sales", "--member", "100", "--strategy", "roundrobin", "--max-wait", "90", "--db", db}, 0, "queue sales added with 1 members", ""},
				{[]string{"queue", "list", "--db", db}, 0, `(?m)^sales\s+roundrobin\s+90\s+0\s+0\s+0\s+0\s+-\s+100$`, ""},
				{[]string{"queue", "rm", "sales", "--db", db}, 0, "queue sales removed", ""},
				{[]string{"queue", "rm", "sales", "--db", db}, 1, "", "no queue sales"},
				{[]string{"migrate", "--db", db}, 0, fmt.Sprintf("schema at version %d", latest), ""},
				{[]string{"migrate", "--down", "--db", db}, 0, fmt.Sprintf("schema at version %d", previousMigration(t)), ""},
				{[]string{"migrate", "--db", db}, 0, fmt.Sprintf("schema at version %d", latest), ""},
				{[]string{"frobnicate"}, 2, "", ""},
				{[]string{"ext", "list", "--db", "mysql://x"}, 1, "", `unsupported database "mysql://x"`},
			}
			for _, s := range steps {
				code, out, errs := officepbx(t, s.args...)
				if code != s.code {
					t.Fatalf("%v: exit %d, want %d\nstdout: %s\nstderr: %s", s.args, code, s.code, out, errs)
				}
				if s.stdout != "" && !regexp.MustCompile(s.stdout).MatchString(out) {
					t.Fatalf("%v: stdout %q does not match %q", s.args, out, s.stdout)
				}
				if s.stderr != "" && !strings.Contains(errs, s.stderr) {
					t.Fatalf("%v: stderr %q lacks %q", s.args, errs, s.stderr)
				}
			}
		})
	}
}

func TestCLIEnvironmentAndConfigFile(t *testing.T) {
	db := testenv.SQLiteDSN(t)
	t.Setenv("PBX_DB", db)
	if code, _, errs := officepbx(t, "ext", "add", "200", "--password", "pw"); code != 0 {
		t.Fatalf("PBX_DB not used: %s", errs)
	}
	if _, out, _ := officepbx(t, "ext", "list", "--db", db); !strings.Contains(out, "200") {
		t.Fatalf("extension not in the PBX_DB database:\n%s", out)
	}
	// A config file and flags reach serve: a bad value in the file is reported as such.
	cfg := filepath.Join(t.TempDir(), "officepbx.yaml")
	os.WriteFile(cfg, []byte("sip: 127.0.0.1:0\ntrust: 10.0.0.0/33\n"), 0o600)
	code, _, errs := officepbx(t, "serve", "--config", cfg)
	if code != 2 || !strings.Contains(errs, `--trust: trusted network "10.0.0.0/33"`) {
		t.Fatalf("config file value not applied: exit %d, %s", code, errs)
	}
	code, _, errs = officepbx(t, "--sip", "127.0.0.1:0", "--dialplan", "no-such-office.lua")
	if code != 2 || !strings.Contains(errs, "--dialplan: stat no-such-office.lua: no such file or directory") {
		t.Fatalf("default command serve with a missing --dialplan: exit %d, %s", code, errs)
	}
	broken := filepath.Join(t.TempDir(), "broken.lua")
	os.WriteFile(broken, []byte("function route(call"), 0o600)
	code, _, errs = officepbx(t, "--sip", "127.0.0.1:0", "--db", "sqlite::memory:", "--dialplan", broken)
	if code != 1 || !strings.Contains(errs, "broken.lua") {
		t.Fatalf("serve with a broken --dialplan: exit %d, %s", code, errs)
	}
	code, _, errs = officepbx(t, "serve", "--rtp-ports", "20000")
	if code != 2 || !strings.Contains(errs, `--rtp-ports: "20000": want LO-HI`) {
		t.Fatalf("bad --rtp-ports: exit %d, %s", code, errs)
	}
	code, _, errs = officepbx(t, "serve", "--rtp-ports", "20000-20100")
	if code != 2 || !strings.Contains(errs, "--rtp-ip") {
		t.Fatalf("--rtp-ports without an IP to name: exit %d, %s", code, errs)
	}
	code, _, errs = officepbx(t, "serve", "--ring-timeout", "-5s")
	if code != 2 || !strings.Contains(errs, "--ring-timeout -5s: want more than 0 and at most 1h") {
		t.Fatalf("negative ring timeout: exit %d, %s", code, errs)
	}
	t.Setenv("PBX_MAX_CALLS", "-1")
	code, _, errs = officepbx(t, "serve")
	if code != 2 || !strings.Contains(errs, "--max-calls -1: must not be negative") {
		t.Fatalf("PBX_MAX_CALLS=-1: exit %d, %s", code, errs)
	}
	t.Setenv("PBX_MAX_CALLS", "0")
	code, _, errs = officepbx(t, "serve", "--sip", "not-an-address")
	if code != 2 || !strings.Contains(errs, `--sip "not-an-address": want host:port`) {
		t.Fatalf("bad --sip: exit %d, %s", code, errs)
	}
}

func TestCLICDRList(t *testing.T) {
	db := testenv.SQLiteDSN(t)
	st, err := store.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	answer := start.Add(5 * time.Second)
	if err := st.WriteCDR(context.Background(), &store.CDR{CallID: "c1", Caller: "100", Dialled: "200", Callee: "200", StartAt: start,
		AnswerAt: &answer, EndAt: answer.Add(30 * time.Second), Disposition: store.Answered, Status: 200, HangupBy: "caller", Reason: "BYE from the caller",
		Recording: "/rec/a.wav\n/rec/b.wav",
		Segments:  []store.CDRSegment{{Seq: 0, Caller: "100", Callee: "200", StartAt: answer, EndAt: answer.Add(30 * time.Second), EndReason: "hangup"}}}); err != nil {
		t.Fatal(err)
	}
	// A queue call: dialled 600, answered by agent 201, who transferred it to 202 after 20.5 s.
	qStart := start.Add(-time.Hour)
	qAnswer, transfer, qEnd := qStart.Add(3*time.Second), qStart.Add(23500*time.Millisecond), qStart.Add(63*time.Second)
	if err := st.WriteCDR(context.Background(), &store.CDR{CallID: "c2", Caller: "100", Dialled: "600", Callee: "202", StartAt: qStart,
		AnswerAt: &qAnswer, EndAt: qEnd, Disposition: store.Answered, Status: 200, HangupBy: "callee", Reason: "BYE from the callee",
		Segments: []store.CDRSegment{
			{Seq: 0, Caller: "100", Callee: "201", StartAt: qAnswer, EndAt: transfer, EndReason: "transferred"},
			{Seq: 1, Caller: "100", Callee: "202", StartAt: transfer, EndAt: qEnd, EndReason: "hangup"},
		}}); err != nil {
		t.Fatal(err)
	}
	if err := st.WriteCDR(context.Background(), &store.CDR{CallID: "c3", Caller: "101", Dialled: "200", Callee: "200",
		StartAt: qStart.Add(-time.Hour), EndAt: qStart.Add(-time.Hour + 2*time.Second), Disposition: store.Declined, Status: 603,
		HangupBy: "callee", Reason: "Decline"}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	code, out, errs := officepbx(t, "cdr", "list", "--db", db)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if code != 0 || len(lines) != 4 {
		t.Fatalf("cdr list: exit %d\n%s%s", code, out, errs)
	}
	for i, want := range []string{
		`^START\s+CALL-ID\s+CALLER\s+DIALLED\s+CALLEE\s+DISPOSITION\s+STATUS\s+DURATION\s+BILLABLE\s+HANGUP-BY\s+SEGMENTS\s+RECORDING\s+REASON$`,
		`^\S+ \S+\s+c1\s+100\s+200\s+200\s+answered\s+200\s+35s\s+30s\s+caller\s+-\s+/rec/a.wav,/rec/b.wav\s+BYE from the caller\s*$`,
		`^\S+ \S+\s+c2\s+100\s+600\s+202\s+answered\s+200\s+63s\s+60s\s+callee\s+100>201:21s,100>202:40s\s+-\s+BYE from the callee\s*$`,
		`^\S+ \S+\s+c3\s+101\s+200\s+200\s+declined\s+603\s+2s\s+0s\s+callee\s+-\s+-\s+Decline\s*$`,
	} {
		if !regexp.MustCompile(want).MatchString(lines[i]) {
			t.Fatalf("cdr list line %d %q does not match %q\n%s", i, lines[i], want, out)
		}
	}
	if code, _, errs := officepbx(t, "cdr", "list", "--limit", "0", "--db", db); code != 2 || !strings.Contains(errs, "--limit 0") {
		t.Fatalf("bad limit: exit %d %s", code, errs)
	}
}

// TestCLIConfigErrorsArePBXs: what makes a flag value invalid is pbx's rule, and the command line
// reports pbx's message with the flag's name in place of the Config field.
func TestCLIConfigErrorsArePBXs(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string   // after "serve"
		cfg  pbx.Config // the same settings, as an embedder would write them
		flag string     // the flag the message must name
	}{
		{"rtp range of one pair", []string{"--rtp-ports", "20000-20001", "--rtp-ip", "127.0.0.1"},
			pbx.Config{RTPPortMin: 20000, RTPPortMax: 20001, RTPAddress: "127.0.0.1"}, "--rtp-ports"},
		{"rtp range of privileged ports", []string{"--rtp-ports", "80-2000", "--rtp-ip", "127.0.0.1"},
			pbx.Config{RTPPortMin: 80, RTPPortMax: 2000, RTPAddress: "127.0.0.1"}, "--rtp-ports"},
		{"rtp range from an odd port", []string{"--rtp-ports", "20001-20004", "--sip", "127.0.0.1:0"},
			pbx.Config{RTPPortMin: 20001, RTPPortMax: 20004, SIP: "127.0.0.1:0"}, "--rtp-ports"},
		{"relay without an IP", []string{"--rtp-ports", "20000-20100"},
			pbx.Config{RTPPortMin: 20000, RTPPortMax: 20100}, "--rtp-ip"},
		{"rtp ip unspecified", []string{"--rtp-ip", "0.0.0.0"}, pbx.Config{RTPAddress: "0.0.0.0"}, "--rtp-ip"},
		{"negative ring timeout", []string{"--ring-timeout", "-5s"}, pbx.Config{RingTimeout: -5 * time.Second}, "--ring-timeout"},
		{"long dialplan timeout", []string{"--dialplan-timeout", "2m"}, pbx.Config{DialplanTimeout: 2 * time.Minute}, "--dialplan-timeout"},
		{"unknown digest", []string{"--digest-algorithms", "md5,md4"}, pbx.Config{DigestAlgorithms: []string{"MD5", "MD4"}}, "--digest-algorithms"},
		{"negative max calls", []string{"--max-calls", "-1"}, pbx.Config{MaxCalls: -1}, "--max-calls"},
		{"sip without port", []string{"--sip", "localhost"}, pbx.Config{SIP: "localhost"}, "--sip"},
		{"domain with a space", []string{"--domain", "my office"}, pbx.Config{Domain: "my office"}, "--domain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ce *pbx.ConfigError
			if err := tc.cfg.Validate(); !errors.As(err, &ce) {
				t.Fatalf("pbx accepts %+v: %v", tc.cfg, err)
			}
			want := tc.flag + " " + ce.Value + ": " + ce.Reason
			code, _, errs := officepbx(t, append([]string{"serve"}, tc.args...)...)
			if code != 2 || !strings.Contains(errs, want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, errs, want)
			}
		})
	}
	// The commands that hash passwords for --domain refuse a domain pbx would not serve.
	code, _, errs := officepbx(t, "ext", "add", "100", "--password", "pw", "--domain", "my office", "--db", testenv.SQLiteDSN(t))
	if code != 2 || !strings.Contains(errs, `--domain "my office": want a host name`) {
		t.Fatalf("ext add with a bad --domain: exit %d, %s", code, errs)
	}
}

func TestRecordSpoolPath(t *testing.T) {
	for _, tc := range []struct{ flag, db, want string }{
		{"", "sqlite:/var/lib/pbx/office.db", "/var/lib/pbx/office.db.records"},
		{"", "sqlite::memory:", "officepbx.records"},
		{"", "postgres://pbx@db/pbx", "officepbx.records"},
		{"/spool/records", "sqlite:office.db", "/spool/records"},
		{"off", "sqlite:office.db", ""},
	} {
		if got := recordSpool(tc.flag, tc.db); got != tc.want {
			t.Errorf("recordSpool(%q, %q) = %q, want %q", tc.flag, tc.db, got, tc.want)
		}
	}
}

func TestSourceRateFlags(t *testing.T) {
	for _, tc := range []struct{ rate, burst int }{
		{pbx.DefaultSourceRate, pbx.DefaultSourceBurst}, {1000, 4000}, {-1, 0}, {0, 0},
	} {
		if got := sourceBurst(tc.rate); got != tc.burst {
			t.Errorf("sourceBurst(%d) = %d, want %d", tc.rate, got, tc.burst)
		}
	}
	if code, _, errs := officepbx(t, "serve", "--pprof"); code != 2 || !strings.Contains(errs, "--pprof needs --http") {
		t.Fatalf("--pprof without --http: exit %d, %s", code, errs)
	}
}

// latestMigration is the number of the newest migration shipped (the SQLite ones; Postgres has
// the same).
func latestMigration(t *testing.T) int {
	t.Helper()
	files, err := fs.Glob(migrations.FS, migrations.SQLite+"/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migrations: %v", err)
	}
	n, err := strconv.Atoi(strings.SplitN(path.Base(files[len(files)-1]), "_", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// previousMigration is the version before the latest (numbers may have gaps: numbers handed out
// to branches that merge later).
func previousMigration(t *testing.T) int {
	t.Helper()
	files, err := fs.Glob(migrations.FS, migrations.SQLite+"/*.sql")
	if err != nil || len(files) < 2 {
		t.Fatalf("migrations: %v", err)
	}
	n, err := strconv.Atoi(strings.SplitN(path.Base(files[len(files)-2]), "_", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	return n
}
