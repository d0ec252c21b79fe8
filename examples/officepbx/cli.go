package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

const defaultDB = "sqlite:officepbx.db"

// usageError is a mistake in the command line: exit status 2 and the usage text.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// run is the whole program; main only wires signals and the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	extend(root, stdout)
	// The flag package writes its error and the whole usage text on a mistake; the usage is shown
	// for -h only, and the error once, below.
	var usage bytes.Buffer
	setOutput(root, &usage)
	// "officepbx --sip ..." without a subcommand means serve.
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && args[0] != "-h" && args[0] != "--help" {
		args = append([]string{"serve"}, args...)
	}
	err := root.Parse(args)
	if err == nil {
		err = root.Run(ctx)
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		stderr.Write(usage.Bytes())
		return 0
	case errors.As(err, new(*configError)):
		fmt.Fprintf(stderr, "officepbx: %v\n", err)
		return 2
	case errors.As(err, new(usageError)), errors.As(err, new(ffcli.NoExecError)), isFlagError(err):
		msg := strings.TrimPrefix(err.Error(), "error parsing commandline arguments: ")
		fmt.Fprintf(stderr, "officepbx: %s\nRun '%s -h' for usage.\n", msg, commandName(root, args))
		return 2
	default:
		fmt.Fprintf(stderr, "officepbx: %v\n", err)
		return 1
	}
}

func isFlagError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "flag provided but not defined") || strings.Contains(s, "invalid value") ||
		strings.Contains(s, "flag needs an argument")
}

func newRoot(stdout, stderr io.Writer) *ffcli.Command {
	root := &ffcli.Command{
		Name:       "officepbx",
		ShortUsage: "officepbx [serve|ext|queue|group|trunk|vm|cdr|migrate|nodes|ban|config|version] [flags]",
		ShortHelp:  "A small office PBX on pbxkit.",
		Subcommands: []*ffcli.Command{
			serveCmd(stderr), extCmd(stdout), queueCmd(stdout), groupCmd(stdout), trunkCmd(stdout), vmCmd(stdout), cdrCmd(stdout), migrateCmd(stdout), nodesCmd(stdout), banCmd(stdout),
		},
		Exec: func(_ context.Context, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q: want serve, ext, queue, group, trunk, vm, cdr, migrate, nodes, ban, config or version", args[0])
			}
			return flag.ErrHelp
		},
	}
	setOutput(root, stderr)
	return root
}

// setOutput sends every command's usage and flag errors to w.
func setOutput(c *ffcli.Command, w io.Writer) {
	if c.FlagSet == nil {
		c.FlagSet = flag.NewFlagSet(c.Name, flag.ContinueOnError)
	}
	c.FlagSet.SetOutput(w)
	for _, sub := range c.Subcommands {
		setOutput(sub, w)
	}
}

// dbFlags are shared by every command that touches the database.
type dbFlags struct {
	db     string
	domain string
}

func (d *dbFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&d.db, "db", defaultDB, "database: sqlite:PATH or postgres://user@host/db (env PBX_DB)")
	fs.StringVar(&d.domain, "domain", pbx.DefaultDomain, "SIP domain, the digest realm passwords are hashed for (env PBX_DOMAIN)")
}

func envOptions() []ff.Option { return []ff.Option{ff.WithEnvVarPrefix("PBX")} }

// dbCommand describes a command that works on the database: its flags are --db and --domain
// plus those flags adds, flags may follow the positional arguments, and run gets the opened store.
type dbCommand struct {
	name  string   // "ext add"
	usage string   // the ShortUsage line
	help  string   // the ShortHelp line
	args  []string // what each positional argument is, e.g. "extension number"
	flags func(fs *flag.FlagSet)
	check func(d *dbFlags, args []string) error // validation before the database is opened
	open  []store.Option
	run   func(ctx context.Context, d *dbFlags, s *store.Store, args []string) error

	// optionalArg, when set (and args empty), is what the one optional positional argument is.
	optionalArg string
}

func (c dbCommand) command() *ffcli.Command {
	fs := flag.NewFlagSet("officepbx "+c.name, flag.ContinueOnError)
	d := &dbFlags{}
	d.register(fs)
	if c.flags != nil {
		c.flags(fs)
	}
	words := strings.Fields(c.name)
	return &ffcli.Command{
		Name: words[len(words)-1], ShortUsage: c.usage, ShortHelp: c.help, FlagSet: fs, Options: envOptions(),
		Exec: func(ctx context.Context, args []string) error {
			args, err := interspersed(fs, args)
			if err != nil {
				return err
			}
			switch {
			case len(args) == len(c.args):
			case c.optionalArg != "" && len(args) == 1:
			case c.optionalArg != "":
				return usagef("%s: want at most one %s, got %d arguments", c.name, c.optionalArg, len(args))
			case len(c.args) == 0:
				return usagef("%s takes no arguments", c.name)
			case len(c.args) == 1:
				return usagef("%s: want exactly one %s, got %d arguments", c.name, c.args[0], len(args))
			default:
				return usagef("%s: want %s, got %d arguments", c.name, strings.Join(c.args, ", "), len(args))
			}
			// --domain is the digest realm passwords are hashed for: a domain pbx would refuse to
			// serve makes a password no phone can use.
			if err := (pbx.Config{Domain: d.domain}).Validate(); err != nil {
				return flagErrors(err)
			}
			if c.check != nil {
				if err := c.check(d, args); err != nil {
					return err
				}
			}
			s, err := store.Open(ctx, d.db, c.open...)
			if err != nil {
				return err
			}
			defer s.Close()
			return c.run(ctx, d, s, args)
		},
	}
}

// group is a command that only holds subcommands.
func group(name, usage, help string, subs ...*ffcli.Command) *ffcli.Command {
	var names []string
	for _, s := range subs {
		names = append(names, s.Name)
	}
	return &ffcli.Command{
		Name: name, ShortUsage: usage, ShortHelp: help, Subcommands: subs,
		Exec: func(context.Context, []string) error {
			return usagef("%s needs a subcommand: %s", name, strings.Join(names, ", "))
		},
	}
}

// interspersed finishes parsing flags that follow positional arguments ("ext add 100 --password
// pw"): the flag package stops at the first positional argument, the command line contract puts
// flags after it. It returns the positional arguments.
func interspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for len(args) > 0 {
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		if strings.HasPrefix(args[0], "-") && len(args[0]) > 1 {
			if err := fs.Parse(args); err != nil {
				return nil, usageError{err.Error()}
			}
			args = fs.Args()
			continue
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	return pos, nil
}

func onOffFlag(dst **bool) func(string) error {
	return func(s string) error {
		switch strings.ToLower(s) {
		case "on", "true", "yes", "1":
			v := true
			*dst = &v
		case "off", "false", "no", "0":
			v := false
			*dst = &v
		default:
			return fmt.Errorf("want on or off")
		}
		return nil
	}
}

func stringFlag(dst **string) func(string) error {
	return func(s string) error {
		*dst = &s
		return nil
	}
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
