package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/peterbourgon/ff/v3/ffcli"
	"go.yaml.in/yaml/v3"
)

func configCmd(stdout io.Writer, serve *flag.FlagSet) *ffcli.Command {
	example := &ffcli.Command{
		Name: "example", ShortUsage: "officepbx config example > officepbx.yaml",
		ShortHelp: "Print a commented config file with every setting at its default.",
		Exec: func(_ context.Context, args []string) error {
			if len(args) > 0 {
				return usagef("config example takes no arguments")
			}
			_, err := io.WriteString(stdout, configExample(serve))
			return err
		},
	}
	return group("config", "officepbx config example", "Config file help.", example)
}

// configLead are the settings the example starts with, the ones a new installation sets; the
// rest follow in alphabetical order.
var configLead = []string{"sip", "db", "domain", "dialplan", "http", "trust", "rtp-ports", "rtp-ip"}

// configSamples are values shown, commented out, for settings that are off by default.
var configSamples = map[string]string{
	"http": "127.0.0.1:8080", "trust": "[10.0.0.0/8, 192.168.1.0/24]", "rtp-ports": "20000-30000",
	"rtp-ip": "192.168.1.10", "dialplan": "dialplan.lua", "node-id": "pbx1", "record-spool": "/var/lib/officepbx/records",
	"recordings": "/var/lib/officepbx/recordings", "tls": "0.0.0.0:5061", "tls-cert": "/etc/officepbx/cert.pem", "tls-key": "/etc/officepbx/key.pem", "external-ip": "203.0.113.7",
}

const configHeader = `# officepbx configuration, YAML. Each key is a long flag of "officepbx serve" and takes the
# same value; a list may be a YAML list or a comma-separated string.
# Use it with --config FILE or PBX_CONFIG=FILE. Every subcommand (ext, queue, group, trunk, cdr,
# migrate, ...) reads the same file and takes from it db and domain, so "ext add" writes where
# serve reads. Precedence: command-line flags, then PBX_* environment variables, then this file,
# then the defaults below. A key that is no flag is an error, reported with its line.
`

// configExample is a config file that sets every setting of serve to its default, with the flag's
// help above it; settings that are off by default are commented out with a sample value.
func configExample(serve *flag.FlagSet) string {
	var b strings.Builder
	b.WriteString(configHeader)
	for _, name := range exampleOrder(serve) {
		f := serve.Lookup(name)
		fmt.Fprintf(&b, "\n# %s\n", f.Usage)
		if f.DefValue == "" {
			fmt.Fprintf(&b, "# %s: %s\n", name, configSamples[name])
			continue
		}
		fmt.Fprintf(&b, "%s: %s\n", name, yamlScalar(f.DefValue))
	}
	return b.String()
}

func exampleOrder(serve *flag.FlagSet) []string {
	var names []string
	lead := map[string]bool{}
	for _, n := range configLead {
		if serve.Lookup(n) != nil {
			names = append(names, n)
			lead[n] = true
		}
	}
	var rest []string
	serve.VisitAll(func(f *flag.Flag) {
		if !lead[f.Name] && f.Name != configFlag {
			rest = append(rest, f.Name)
		}
	})
	sort.Strings(rest)
	return append(names, rest...)
}

// yamlScalar writes s plain when YAML reads it back as the same string, else double-quoted.
func yamlScalar(s string) string {
	var n yaml.Node
	if err := yaml.Unmarshal([]byte("k: "+s), &n); err == nil && len(n.Content) == 1 {
		if m := n.Content[0]; len(m.Content) == 2 && m.Content[1].Kind == yaml.ScalarNode && m.Content[1].Value == s {
			return s
		}
	}
	return strconv.Quote(s)
}
