package main

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
)

// writeConfig writes a config file into a folder of the test's and returns its path.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "officepbx.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startServe runs serve with args in the current folder until stop, and waits for its start-up
// summary. stop returns the exit status.
func startServe(t *testing.T, args ...string) (logs *b2buatest.LogBuffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	logs = &b2buatest.LogBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, append([]string{"serve"}, args...), logs, logs) }()
	stopped := false
	code := 0
	stop = func() int {
		if !stopped {
			cancel()
			code, stopped = <-done, true
		}
		return code
	}
	t.Cleanup(func() { stop() })
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "officepbx is running"); time.Sleep(20 * time.Millisecond) {
		select {
		case code = <-done:
			stopped = true
			t.Fatalf("serve exited %d:\n%s", code, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve printed no summary:\n%s", logs.String())
		}
	}
	return logs, stop
}

// TestConfigSharedBySubcommands: one YAML file serves every command: ext add writes to the
// database it names (and hashes for its domain), serve with the same file sees the extension,
// and PBX_CONFIG names the file as --config does.
func TestConfigSharedBySubcommands(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, "# the office\nsip: 127.0.0.1:0\ndb: sqlite:"+filepath.Join(dir, "office.db")+
		"\ndomain: office.example\ntrust:\n  - 10.1.0.0/16\n  - 10.2.0.0/16\nring-timeout: 20s\n")
	if code, out, errs := officepbx(t, "ext", "add", "100", "--password", "s3cret-100", "--config", cfg); code != 0 {
		t.Fatalf("ext add --config: exit %d\n%s%s", code, out, errs)
	}
	t.Setenv("PBX_CONFIG", cfg)
	if code, out, errs := officepbx(t, "ext", "list"); code != 0 || !regexp.MustCompile(`(?m)^100\s`).MatchString(out) {
		t.Fatalf("ext list with PBX_CONFIG: exit %d\n%s%s", code, out, errs)
	}
	t.Chdir(t.TempDir())
	logs, stop := startServe(t, "--config", cfg)
	out := logs.String()
	for _, want := range []string{"office.db, 1 extension", "domain office.example"} {
		if !strings.Contains(out, want) {
			t.Errorf("serve with the config file: summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "cannot authenticate") || strings.Contains(out, "First run") {
		t.Errorf("serve and ext add disagree on the domain or the database:\n%s", out)
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, logs.String())
	}
}

// TestConfigPrecedence: command-line flags over PBX_* variables over the file over defaults.
func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	db := func(name string) string { return "sqlite:" + filepath.Join(dir, name+".db") }
	cfg := writeConfig(t, "db: "+db("file")+"\n")
	steps := []struct {
		env, flag, want string
	}{
		{"", "", "file"}, {db("env"), "", "env"}, {db("env"), db("flag"), "flag"},
	}
	for i, s := range steps {
		t.Setenv("PBX_DB", s.env)
		args := []string{"ext", "add", "20" + string(rune('0'+i)), "--password", "pw-long", "--config", cfg}
		if s.flag != "" {
			args = append(args, "--db", s.flag)
		}
		if code, _, errs := officepbx(t, args...); code != 0 {
			t.Fatalf("%v: %s", args, errs)
		}
		t.Setenv("PBX_DB", "")
		if _, out, _ := officepbx(t, "ext", "list", "--db", db(s.want)); !strings.Contains(out, args[2]) {
			t.Fatalf("step %d: extension %s not in the %s database:\n%s", i, args[2], s.want, out)
		}
	}
	// serve takes every key: a value from the file reaches pbx's rules, and a flag overrides it.
	cfg = writeConfig(t, "sip: 127.0.0.1:0\nmax-calls: -1\n")
	if code, _, errs := officepbx(t, "serve", "--config", cfg); code != 2 || !strings.Contains(errs, "--max-calls -1: must not be negative") {
		t.Fatalf("max-calls from the file: exit %d, %s", code, errs)
	}
	if code, _, errs := officepbx(t, "serve", "--config", cfg, "--max-calls", "5", "--ring-timeout", "-1s"); code != 2 ||
		strings.Contains(errs, "--max-calls") || !strings.Contains(errs, "--ring-timeout") {
		t.Fatalf("a flag over the file: exit %d, %s", code, errs)
	}
}

// TestConfigErrorsNameFileAndLine: every mistake in the file is reported with its path and
// line, by serve and by the other commands alike, with exit status 2.
func TestConfigErrorsNameFileAndLine(t *testing.T) {
	for _, tc := range []struct {
		name, file, want string
	}{
		{"syntax", "sip: 127.0.0.1:0\ndb: sqlite:x.db\n  domain: [office\n", `:3: YAML syntax: mapping values are not allowed`},
		{"unknown key", "sip: 127.0.0.1:0\nsipp: 127.0.0.1:5070\n", `:2: unknown key "sipp" (did you mean sip?)`},
		{"bad value", "# comment\nmax-calls: lots\n", `:2: max-calls "lots": parse error`},
		{"nested", "db:\n  path: x.db\n", `:2: db: want a value or a list of values`},
		{"twice", "db: sqlite:a.db\nsip: 127.0.0.1:0\ndb: sqlite:b.db\n", `:3: db is set twice (first on line 1)`},
		{"old format", "sip 127.0.0.1:0\ntrust 10.0.0.0/8\n", `:1: want YAML ("key: value" lines, keys named as the long flags); the old "flag value" format is not read any more: write "sip 127.0.0.1:0" as "sip: 127.0.0.1:0"`},
		{"config in config", "config: other.yaml\n", `:1: config: a config file cannot name another one`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeConfig(t, tc.file)
			for _, cmd := range [][]string{{"serve"}, {"ext", "list"}, {"migrate"}} {
				code, _, errs := officepbx(t, append(cmd, "--config", cfg)...)
				if code != 2 || !strings.Contains(errs, "officepbx: "+cfg+tc.want) {
					t.Errorf("%v: exit %d, stderr %q; want 2 and %q", cmd, code, errs, cfg+tc.want)
				}
			}
		})
	}
	code, _, errs := officepbx(t, "ext", "list", "--config", "no-such.yaml")
	if code != 2 || !strings.Contains(errs, "no-such.yaml: cannot read the config file: no such file or directory") {
		t.Fatalf("missing file: exit %d, %s", code, errs)
	}
}

// TestConfigExampleRoundTrips: "config example" names every setting of serve, parses back, and
// the settings it makes are serve's defaults, so the file as printed changes nothing.
func TestConfigExampleRoundTrips(t *testing.T) {
	code, out, errs := officepbx(t, "config", "example")
	if code != 0 {
		t.Fatalf("config example: exit %d, %s", code, errs)
	}
	root := newRoot(nil, nil)
	extend(root, nil)
	var serve *flag.FlagSet
	for _, c := range root.Subcommands {
		if c.Name == "serve" {
			serve = c.FlagSet
		}
	}
	cf, err := parseConfig("example.yaml", []byte(out))
	if err != nil {
		t.Fatalf("the example does not parse: %v\n%s", err, out)
	}
	for _, e := range cf.entries {
		if f := serve.Lookup(e.key); f == nil || f.DefValue != e.value {
			t.Errorf("example line %d sets %s to %q, not serve's default", e.line, e.key, e.value)
		}
	}
	serve.VisitAll(func(f *flag.Flag) {
		if f.Name != configFlag && !regexp.MustCompile(`(?m)^(# )?`+regexp.QuoteMeta(f.Name)+`:`).MatchString(out) {
			t.Errorf("the example lacks %s", f.Name)
		}
	})
	// Every value goes through its flag's parser, and the commands take the file.
	path := writeConfig(t, out)
	if err := serve.Set(configFlag, path); err != nil {
		t.Fatal(err)
	}
	if err := applyConfig(serve, configKeys(serve), configKeys(serve)); err != nil {
		t.Fatalf("serve does not take the example: %v", err)
	}
	if code, _, errs := officepbx(t, "ext", "list", "--config", path); code != 0 {
		t.Fatalf("ext list with the example: exit %d, %s", code, errs)
	}
}
