package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/pbxkit/pbxkit/internal/testenv"
)

type cliStep struct {
	args   []string
	code   int
	stdout string // regexp
	stderr string // substring
}

func runSteps(t *testing.T, db string, steps []cliStep) {
	t.Helper()
	for _, s := range steps {
		code, out, errs := officepbx(t, append(s.args, "--db", db)...)
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
}

// TestCLIQueueAgents: queue add with the call-centre settings, pause with a reason, unpause,
// logout, login, in one queue or all; bad input is exit status 2 with a message, a missing
// membership exit status 1.
func TestCLIQueueAgents(t *testing.T) {
	for name, dsn := range map[string]func(testing.TB) string{"sqlite": testenv.SQLiteDSN, "postgres": testenv.PostgresDSN} {
		t.Run(name, func(t *testing.T) {
			runSteps(t, dsn(t), []cliStep{
				{[]string{"ext", "add", "101", "--password", "pw"}, 0, "", ""},
				{[]string{"ext", "add", "102", "--password", "pw"}, 0, "", ""},
				{[]string{"queue", "add", "sales", "--strategy", "linear", "--member", "102,101", "--wrapup", "10", "--ring-timeout", "12"}, 0, "queue sales added with 2 members", ""},
				{[]string{"queue", "add", "support", "--member", "101"}, 0, "", ""},
				{[]string{"queue", "add", "x", "--wrapup", "-1"}, 2, "", "must not be negative"},
				{[]string{"queue", "add", "x", "--member", "101,101"}, 2, "", "member 101 is listed twice"},
				{[]string{"queue", "add", "x", "--member", "1 01"}, 2, "", `member "1 01" is not an extension number`},
				{[]string{"queue", "pause", "sales", "101", "--reason", "lunch"}, 0, "agent 101 paused in 1 queue", ""},
				{[]string{"queue", "logout", "all", "102"}, 0, "agent 102 logged out in 1 queue", ""},
				{[]string{"queue", "list"}, 0, `(?m)^sales\s+linear\s+0\s+0\s+0\s+10\s+12\s+-\s+102\(out\),101\(paused:lunch\)$`, ""},
				{[]string{"queue", "unpause", "all", "101"}, 0, "agent 101 unpaused in 2 queue", ""},
				{[]string{"queue", "login", "sales", "102"}, 0, "agent 102 logged in in 1 queue", ""},
				{[]string{"queue", "list"}, 0, `(?m)^sales\s+linear\s+0\s+0\s+0\s+10\s+12\s+-\s+102,101$`, ""},
				{[]string{"queue", "pause", "support", "102"}, 1, "", "extension 102 is not a member of queue support"},
				{[]string{"queue", "pause", "all", "999"}, 1, "", "extension 999 is in no queue"},
				{[]string{"queue", "pause", "sales"}, 2, "", "want queue name (or all), extension, got 1 arguments"},
				{[]string{"queue", "pause", "sa les", "101"}, 2, "", `bad queue name "sa les"`},
				{[]string{"queue", "pause", "sales", "101", "--reason", strings.Repeat("x", 65)}, 2, "", "--reason must be at most 64"},
				{[]string{"queue", "unpause", "sales", "101", "--reason", "x"}, 2, "", "flag provided but not defined: -reason"},
				{[]string{"queue", "snooze", "sales", "101"}, 2, "", ""},
			})
		})
	}
}

// TestCLIGroups: group add, list and rm, and every kind of bad input.
func TestCLIGroups(t *testing.T) {
	for name, dsn := range map[string]func(testing.TB) string{"sqlite": testenv.SQLiteDSN, "postgres": testenv.PostgresDSN} {
		t.Run(name, func(t *testing.T) {
			runSteps(t, dsn(t), []cliStep{
				{[]string{"ext", "add", "101", "--password", "pw"}, 0, "", ""},
				{[]string{"ext", "add", "102", "--password", "pw"}, 0, "", ""},
				{[]string{"group", "add", "500", "--strategy", "hunt", "--member", "102,101", "--timeout", "10"}, 0, `group 500 added \(hunt\) with 2 members`, ""},
				{[]string{"group", "add", "501", "--member", "101,102"}, 0, `group 501 added \(parallel\)`, ""},
				{[]string{"group", "list"}, 0, `(?s)^NUMBER\s+STRATEGY\s+TIMEOUT\s+MEMBERS\n500\s+hunt\s+10\s+102,101\n501\s+parallel\s+0\s+101,102\n$`, ""},
				{[]string{"group", "add", "500", "--member", "101"}, 1, "", "500 is already a group's or an extension's number"},
				{[]string{"group", "add", "101", "--member", "102"}, 1, "", "101 is already a group's or an extension's number"},
				{[]string{"group", "add", "502", "--member", "999"}, 1, "", "member 999 is not an extension"},
				{[]string{"group", "add", "502", "--strategy", "loud", "--member", "101"}, 2, "", `--strategy "loud": want parallel or hunt`},
				{[]string{"group", "add", "502", "--timeout", "-3", "--member", "101"}, 2, "", "--timeout -3: want 0 to 3600 seconds"},
				{[]string{"group", "add", "502", "--timeout", "ten", "--member", "101"}, 2, "", `invalid value "ten" for flag -timeout`},
				{[]string{"group", "add", "502"}, 2, "", "--member is required"},
				{[]string{"group", "add", "5 02", "--member", "101"}, 2, "", `"5 02" is not a usable number`},
				{[]string{"group", "add", "--member", "101"}, 2, "", "want exactly one group number"},
				{[]string{"group", "rm", "500"}, 0, "group 500 removed", ""},
				{[]string{"group", "rm", "500"}, 1, "", "no group 500"},
			})
			if code, _, errs := officepbx(t, "group"); code != 2 || !strings.Contains(errs, "group needs a subcommand: add, list, rm") {
				t.Fatalf("group alone: exit %d, %s", code, errs)
			}
		})
	}
}
