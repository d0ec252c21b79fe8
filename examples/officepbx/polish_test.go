package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/internal/testenv"
	"github.com/pbxkit/pbxkit/store"
)

// TestErrorPolish: the rough edges issue 15 found when officepbx was tried as a new user would.
func TestErrorPolish(t *testing.T) {
	t.Run("sqlite folder missing", func(t *testing.T) {
		db := "sqlite:" + filepath.Join(t.TempDir(), "missing", "office.db")
		code, _, errs := officepbx(t, "ext", "list", "--db", db)
		if code != 1 || !strings.Contains(errs, "missing does not exist; create it first") || strings.Contains(errs, "out of memory") {
			t.Fatalf("exit %d, %s", code, errs)
		}
	})
	t.Run("postgres failure logged formatted", func(t *testing.T) {
		code, _, errs := officepbx(t, "serve", "--sip", "127.0.0.1:0", "--db", "postgres://nobody@127.0.0.1:1/x?connect_timeout=2")
		if code != 1 || strings.Contains(errs, "%v") || !strings.Contains(errs, "connect") {
			t.Fatalf("exit %d, %s", code, errs)
		}
	})
	t.Run("broken lua beside the dialplan", func(t *testing.T) {
		t.Chdir(t.TempDir())
		os.WriteFile("dialplan.lua", []byte("function route(call) end"), 0o644)
		os.WriteFile("scratch.lua", []byte("function route(call"), 0o644)
		logs, _ := startServe(t, "--sip", "127.0.0.1:0", "--db", "sqlite::memory:")
		if !strings.Contains(logs.String(), "does not compile") || !strings.Contains(logs.String(), "scratch.lua") {
			t.Fatalf("no warning about scratch.lua:\n%s", logs.String())
		}
	})
	t.Run("flag typo printed once", func(t *testing.T) {
		for _, args := range [][]string{{"serve", "--sipp", "x"}, {"--sipp", "x"}, {"ext", "add", "100", "--pasword", "x"}} {
			code, _, errs := officepbx(t, args...)
			if code != 2 || strings.Count(errs, "flag provided but not defined") != 1 || strings.Contains(errs, "USAGE") ||
				strings.Contains(errs, "error parsing") {
				t.Errorf("%v: exit %d, stderr:\n%s", args, code, errs)
			}
		}
		code, _, errs := officepbx(t, "ext", "add", "-h")
		if code != 0 || !strings.Contains(errs, "USAGE") {
			t.Errorf("-h: exit %d, stderr:\n%s", code, errs)
		}
	})
	t.Run("extension numbers and passwords", func(t *testing.T) {
		db := testenv.SQLiteDSN(t)
		for _, tc := range []struct {
			args []string
			code int
			want string
		}{
			{[]string{"ext", "add", "sales", "--password", "long-enough"}, 1, `invalid number "sales": an extension number is digits only`},
			{[]string{"ext", "add", "100", "--password", "100"}, 2, "the password must not be the extension number"},
			{[]string{"ext", "add", "100", "--password", "long-enough"}, 0, ""},
			{[]string{"ext", "set", "100", "--password", "100"}, 2, "the password must not be the extension number"},
		} {
			code, _, errs := officepbx(t, append(tc.args, "--db", db)...)
			if code != tc.code || !strings.Contains(errs, tc.want) {
				t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errs, tc.code, tc.want)
			}
		}
	})
	t.Run("ext list shows contacts", func(t *testing.T) {
		db := testenv.SQLiteDSN(t)
		officepbx(t, "ext", "add", "100", "--password", "long-enough", "--db", db)
		officepbx(t, "ext", "add", "101", "--password", "long-enough", "--db", db)
		s, err := store.Open(context.Background(), db)
		if err != nil {
			t.Fatal(err)
		}
		err = s.PutBinding(context.Background(), store.Binding{Extension: "100", Contact: "sip:100@192.0.2.10:5062;transport=udp",
			Source: "192.0.2.10:5062", Transport: "udp", ExpiresAt: time.Now().Add(time.Hour), CallID: "r1", CSeq: 1})
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		_, out, _ := officepbx(t, "ext", "list", "--db", db)
		if !regexp.MustCompile(`(?m)^100\s.*\ssip:100@192\.0\.2\.10:5062;transport=udp$`).MatchString(out) ||
			!regexp.MustCompile(`(?m)^101\s.*\s-$`).MatchString(out) {
			t.Fatalf("ext list:\n%s", out)
		}
	})
}
