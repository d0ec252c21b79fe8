package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/store"
)

// TestFirstRunDemoExtensions: serve on an empty database makes extensions 100-103 and the
// support queue and prints their passwords with the address phones use; the next start prints
// the summary only. The shipped dialplan loads when serve runs beside it.
func TestFirstRunDemoExtensions(t *testing.T) {
	shipped, err := os.ReadFile("dialplan.lua")
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	if err := os.WriteFile("dialplan.lua", shipped, 0o644); err != nil {
		t.Fatal(err)
	}
	logs, stop := startServe(t, "--sip", "127.0.0.1:0")
	first := logs.String()
	if code := stop(); code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, first)
	}
	passwords := regexp.MustCompile(`(?m)^  (10[0-3])  .{10}  password (\S{12})$`).FindAllStringSubmatch(first, -1)
	if len(passwords) != 4 || !strings.Contains(first, "Set a phone to server 127.0.0.1:") {
		t.Fatalf("first start: want four demo extensions and the server address:\n%s", first)
	}
	for _, want := range []string{"database    sqlite:officepbx.db, 4 extensions", "dialplan    dialplan.lua", "media relay off", "HTTP        off"} {
		if !strings.Contains(first, want) {
			t.Errorf("summary lacks %q:\n%s", want, first)
		}
	}
	// The passwords printed are the ones stored.
	s, err := store.Open(context.Background(), "sqlite:officepbx.db")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range passwords {
		e, err := s.Extension(context.Background(), m[1])
		if err != nil {
			t.Fatal(err)
		}
		want := store.Extension{Number: e.Number}
		want.SetPassword(e.Realm, m[2])
		if want.HA1MD5 != e.HA1MD5 {
			t.Errorf("extension %s: the printed password is not the stored one", m[1])
		}
	}
	s.Close()

	logs, stop = startServe(t, "--sip", "127.0.0.1:0")
	stop()
	if again := logs.String(); strings.Contains(again, "password") || !strings.Contains(again, "4 extensions") {
		t.Fatalf("second start printed passwords again, or lost the extensions:\n%s", again)
	}
	if _, out, _ := officepbx(t, "queue", "list", "--db", "sqlite:"+filepath.Join(mustGetwd(t), "officepbx.db")); !strings.Contains(out, "support") {
		t.Fatalf("no support queue:\n%s", out)
	}
}

// TestDialplanDefault: --dialplan "" (here through the config file) loads no dialplan even with
// a dialplan.lua beside.
func TestDialplanDefault(t *testing.T) {
	t.Chdir(t.TempDir())
	os.WriteFile("dialplan.lua", []byte("function route(call) end"), 0o644)
	cfg := writeConfig(t, "dialplan: \"\"\ndb: \"sqlite::memory:\"\nsip: 127.0.0.1:0\n")
	logs, _ := startServe(t, "--config", cfg)
	if !strings.Contains(logs.String(), "dialplan    none") {
		t.Fatalf("dialplan \"\" did not disable the default:\n%s", logs.String())
	}
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

func TestVersion(t *testing.T) {
	code, out, errs := officepbx(t, "version")
	if code != 0 || !regexp.MustCompile(`^officepbx \S+\n`).MatchString(out) || !strings.Contains(out, "go        go1.") {
		t.Fatalf("version: exit %d\n%s%s", code, out, errs)
	}
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/pbxkit/pbxkit", Version: "v0.4.0"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "4a7e538"}, {Key: "vcs.time", Value: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).Format(time.RFC3339)}, {Key: "vcs.modified", Value: "true"}}}
	want := "officepbx v0.4.0\nmodule    github.com/pbxkit/pbxkit\nrevision  4a7e538 2026-12-01T00:00:00Z (with uncommitted changes)\ngo        go1.26.8\n"
	if got := versionText(bi, true); got != want {
		t.Fatalf("versionText:\n%s\nwant:\n%s", got, want)
	}
}

// TestSummaryHidesDatabasePassword: the database as welcome hands it to the summary (which ends up
// in the journal) carries no password, and extensions are counted in good English.
func TestSummaryHidesDatabasePassword(t *testing.T) {
	var out strings.Builder
	startInfo{sip: "127.0.0.1:5060", db: store.RedactDSN("postgres://pbx:TopSecret@db:5432/pbx"), extensions: 1}.print(&out)
	if strings.Contains(out.String(), "TopSecret") || !strings.Contains(out.String(), "postgres://pbx:***@db:5432/pbx, 1 extension\n") {
		t.Fatalf("summary:\n%s", out.String())
	}
}
