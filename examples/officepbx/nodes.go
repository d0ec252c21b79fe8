package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// nodesCmd lists the PBX nodes serving from the database, with the live registrations each took:
// each running node refreshes its row every heartbeat (pbx.Config.HeartbeatInterval); one that
// missed pbx.NodeStaleBeats beats is shown as stale (it died, or lost the database).
func nodesCmd(stdout io.Writer) *ffcli.Command {
	var interval time.Duration
	return dbCommand{
		name: "nodes", usage: "officepbx nodes [--db DSN] [--heartbeat D]",
		help: "List the PBX nodes serving from the database, live or stale.",
		flags: func(fs *flag.FlagSet) {
			fs.DurationVar(&interval, "heartbeat", pbx.DefaultHeartbeatInterval, "the nodes' heartbeat interval: a node is stale after "+fmt.Sprint(pbx.NodeStaleBeats)+" missed beats")
		},
		// No cache: no watcher or listener goroutines for a one-shot command.
		open: []store.Option{store.WithoutMigrate(), store.WithCacheTTL(0)},
		run: func(ctx context.Context, _ *dbFlags, s *store.Store, _ []string) error {
			nodes, err := s.Nodes(ctx)
			if err != nil {
				return err
			}
			if len(nodes) == 0 {
				fmt.Fprintln(stdout, "no nodes")
				return nil
			}
			bindings, err := s.LiveBindings(ctx)
			if err != nil {
				return err
			}
			regs := map[string]int{}
			for _, b := range bindings {
				regs[b.NodeID]++
			}
			now := time.Now()
			w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "NODE\tSTATE\tSIP\tHTTP\tREGISTRATIONS\tVERSION\tSTARTED\tLAST SEEN")
			for _, n := range nodes {
				state := "live"
				if !pbx.NodeLive(n, interval, now) {
					state = "stale"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s ago\n", n.ID, state, dash(n.SIPAddr), dash(n.HTTPAddr), regs[n.ID],
					dash(n.Version), n.StartedAt.Local().Format(time.DateTime), now.Sub(n.LastSeen).Round(100*time.Millisecond))
			}
			return w.Flush()
		},
	}.command()
}

// buildVersion is the version a node announces: the module version, and the VCS revision when
// the binary was built in a checkout.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	v := bi.Main.Version
	for _, kv := range bi.Settings {
		if kv.Key == "vcs.revision" && len(kv.Value) >= 12 {
			v += " " + kv.Value[:12]
		}
	}
	return v
}
