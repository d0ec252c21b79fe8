package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/peterbourgon/ff/v3/ffcli"
)

// configFlag is the flag (and, through ff, PBX_CONFIG) that names the config file.
const configFlag = "config"

// withConfig makes every command that works on the database (and serve) read the same config
// file: it gives the command --config and, before the command runs, sets from the file each flag
// that neither the command line nor the environment set. Precedence is therefore flags, then
// PBX_* variables, then the file, then the defaults. serve takes every key; the other commands
// take the settings they share with serve (--db, --domain) and pass over the rest, so that one
// file serves them all and "ext add" writes where serve reads. A key that is no flag of serve is
// an error for every command.
func withConfig(root *ffcli.Command, serve *flag.FlagSet) {
	keys := configKeys(serve)
	shared := sharedKeys()
	walk(root, func(c *ffcli.Command) {
		if len(c.Subcommands) > 0 || c.FlagSet == nil || c.FlagSet.Lookup("db") == nil || c.Exec == nil {
			return
		}
		fs, exec := c.FlagSet, c.Exec
		if fs.Lookup(configFlag) == nil {
			fs.String(configFlag, "", "YAML config file, keys named as the long flags of serve (env PBX_CONFIG)")
		}
		take := shared
		if fs == serve {
			take = keys
		}
		c.Exec = func(ctx context.Context, args []string) error {
			// Flags after the arguments ("ext add 100 --config f.yaml") count too.
			pos, err := interspersed(fs, args)
			if err != nil {
				return err
			}
			if err := applyConfig(fs, keys, take); err != nil {
				return err
			}
			if fs == serve {
				if err := defaultDialplan(fs); err != nil {
					return err
				}
			}
			return exec(ctx, keepPositional(pos))
		}
	})
}

// walk calls fn for c and every command below it.
func walk(c *ffcli.Command, fn func(*ffcli.Command)) {
	fn(c)
	for _, s := range c.Subcommands {
		walk(s, fn)
	}
}

// keepPositional protects positional arguments that look like flags from being parsed again.
func keepPositional(pos []string) []string {
	for _, a := range pos {
		if strings.HasPrefix(a, "-") {
			return append([]string{"--"}, pos...)
		}
	}
	return pos
}

// configKeys are the keys a config file may hold: the long flags of serve but --config.
func configKeys(serve *flag.FlagSet) map[string]bool {
	keys := map[string]bool{}
	serve.VisitAll(func(f *flag.Flag) {
		if f.Name != configFlag {
			keys[f.Name] = true
		}
	})
	return keys
}

// sharedKeys are the settings every database command takes from the config file.
func sharedKeys() map[string]bool {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	new(dbFlags).register(fs)
	keys := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { keys[f.Name] = true })
	return keys
}

// applyConfig sets the flags of fs named in take from the config file that --config names,
// unless they were set already; keys outside keys are errors.
func applyConfig(fs *flag.FlagSet, keys, take map[string]bool) error {
	path := fs.Lookup(configFlag).Value.String()
	if path == "" {
		return nil
	}
	cf, err := readConfigFile(path)
	if err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, e := range cf.entries {
		switch {
		case e.key == configFlag:
			return &configError{path, e.line, "config: a config file cannot name another one"}
		case !keys[e.key]:
			return &configError{path, e.line, unknownKey(e.key, keys)}
		}
		// Every value is checked as serve would take it, whether this command takes it or not:
		// one file, the same errors from every command.
		target := fs
		if set[e.key] || !take[e.key] || fs.Lookup(e.key) == nil {
			target = serveCmd(io.Discard).FlagSet
		}
		if err := target.Set(e.key, e.value); err != nil {
			return &configError{path, e.line, fmt.Sprintf("%s %q: %v", e.key, e.value, err)}
		}
	}
	return nil
}

// unknownKey says that key is no setting, and names the closest one when there is one.
func unknownKey(key string, keys map[string]bool) string {
	msg := fmt.Sprintf("unknown key %q", key)
	trimmed := strings.TrimLeft(key, "-")
	var near []string
	for k := range keys {
		if k == trimmed || strings.HasPrefix(k, trimmed) || strings.HasPrefix(trimmed, k) {
			near = append(near, k)
		}
	}
	sort.Strings(near)
	if len(near) > 0 {
		msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(near, " or "))
	}
	return msg + "; 'officepbx config example' lists the keys"
}

// extend adds the commands that are not about the database (version, config) and makes the
// database commands read the config file.
func extend(root *ffcli.Command, stdout io.Writer) {
	var serve *flag.FlagSet
	for _, c := range root.Subcommands {
		if c.Name == "serve" {
			serve = c.FlagSet
		}
	}
	if serve == nil {
		return
	}
	root.Subcommands = append(root.Subcommands, configCmd(stdout, serve), versionCmd(stdout))
	withConfig(root, serve)
}

// commandName is the command that args select, for "Run 'officepbx ext add -h' for usage".
func commandName(root *ffcli.Command, args []string) string {
	name := "officepbx"
	c := root
	for _, a := range args {
		var next *ffcli.Command
		for _, s := range c.Subcommands {
			if strings.EqualFold(s.Name, a) {
				next = s
			}
		}
		if next == nil {
			break
		}
		name += " " + next.Name
		c = next
	}
	return name
}
