package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pbxkit/pbxkit/internal/testenv"
	"github.com/pbxkit/pbxkit/store"
)

// TestCLIVoicemail: ext set switches a mailbox on with a PIN (stored hashed); vm list shows the
// messages the PBX left, vm play prints a message's file or copies it, vm rm deletes the message
// with its file; mistakes are refused with a reason. Both databases.
func TestCLIVoicemail(t *testing.T) {
	for name, dsn := range map[string]func(testing.TB) string{"sqlite": testenv.SQLiteDSN, "postgres": testenv.PostgresDSN} {
		t.Run(name, func(t *testing.T) {
			db := dsn(t)
			dir := t.TempDir()
			mustRun(t, 0, "extension 101 added", "", "ext", "add", "101", "--password", "pw101", "--db", db)
			mustRun(t, 0, "extension 102 added", "", "ext", "add", "102", "--password", "pw102", "--db", db)
			mustRun(t, 0, "extension 101 updated", "", "ext", "set", "101", "--voicemail", "on", "--pin", "1234", "--db", db)
			mustRun(t, 2, "", "--pin: invalid vm_pin: must be 4 to 16 digits", "ext", "set", "101", "--pin", "12", "--db", db)
			mustRun(t, 0, `(?m)^101\s+on\s+off\s+-\s+-\s+-\s+off\s+on\s+-\n102\s+on\s+off\s+-\s+-\s+-\s+off\s+off\s+-$`, "", "ext", "list", "--db", db)
			mustRun(t, 2, "", "want on or off", "ext", "set", "101", "--voicemail", "perhaps", "--db", db)

			s := openStore(t, db)
			ctx := context.Background()
			e, err := s.Extension(ctx, "101")
			if err != nil || !e.Voicemail || !e.CheckPIN("1234") || strings.Contains(e.VMPINHash, "1234") {
				t.Fatalf("after ext set: %+v, %v", e, err)
			}
			wav := filepath.Join(dir, "1.wav")
			os.WriteFile(wav, []byte("RIFF-not-really"), 0o600)
			m := &store.VoicemailMessage{Mailbox: "101", Caller: "102", CallerName: "Bob", Path: wav, Seconds: 4}
			if err := s.AddVoicemail(ctx, m); err != nil {
				t.Fatal(err)
			}
			id := fmt.Sprint(m.ID)
			row := fmt.Sprintf(`(?m)^101\s+%s\s+new\s+\S+ \S+\s+4\s+102\s+Bob\s+%s$`, id, regexp.QuoteMeta(wav))
			mustRun(t, 0, row, "", "vm", "list", "--db", db)
			mustRun(t, 0, row, "", "vm", "list", "101", "--db", db)
			mustRun(t, 0, `^MAILBOX.*\n$`, "", "vm", "list", "102", "--db", db)
			mustRun(t, 1, "", "no extension 999", "vm", "list", "999", "--db", db)
			mustRun(t, 2, "", "want at most one extension number", "vm", "list", "101", "102", "--db", db)

			mustRun(t, 0, "^"+regexp.QuoteMeta(wav)+"\n$", "", "vm", "play", "101", id, "--db", db)
			out := filepath.Join(dir, "copy.wav")
			mustRun(t, 0, "", "", "vm", "play", "101", id, "--out", out, "--db", db)
			if b, err := os.ReadFile(out); err != nil || string(b) != "RIFF-not-really" {
				t.Fatalf("--out copy: %q, %v", b, err)
			}
			mustRun(t, 0, "^RIFF-not-really$", "", "vm", "play", "101", id, "--out", "-", "--db", db)
			mustRun(t, 1, "", "mailbox 102 has no message "+id, "vm", "play", "102", id, "--db", db)
			mustRun(t, 2, "", `message ID "x" is not a number`, "vm", "play", "101", "x", "--db", db)

			mustRun(t, 1, "", "mailbox 102 has no message", "vm", "rm", "102", id, "--db", db)
			mustRun(t, 0, "message "+id+" of mailbox 101 removed", "", "vm", "rm", "101", id, "--db", db)
			if _, err := os.Stat(wav); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("vm rm left the WAV file: %v", err)
			}
			if c, _ := s.MailboxCounts(ctx, "101"); c != (store.MailboxCounts{}) {
				t.Fatalf("counts after vm rm: %+v", c)
			}
			mustRun(t, 1, "", "mailbox 101 has no message "+id, "vm", "rm", "101", id, "--db", db)
		})
	}
}

// mustRun runs officepbx with args and checks its exit status, stdout (a regexp) and stderr (a
// substring).
func mustRun(t *testing.T, code int, stdout, stderr string, args ...string) {
	t.Helper()
	got, out, errs := officepbx(t, args...)
	if got != code {
		t.Fatalf("%v: exit %d, want %d\nstdout: %s\nstderr: %s", args, got, code, out, errs)
	}
	if stdout != "" && !regexp.MustCompile(stdout).MatchString(out) {
		t.Fatalf("%v: stdout %q does not match %q", args, out, stdout)
	}
	if stderr != "" && !strings.Contains(errs, stderr) {
		t.Fatalf("%v: stderr %q lacks %q", args, errs, stderr)
	}
}

func openStore(t *testing.T, dsn string) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
