package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/pbxkit/pbxkit/store"
)

// banOpen opens the database for the ban commands as for nodes: they look at (and lift) what the
// running nodes made, so they leave the schema to migrate and start no cache watchers.
var banOpen = []store.Option{store.WithoutMigrate(), store.WithCacheTTL(0)}

func banCmd(stdout io.Writer) *ffcli.Command {
	return group("ban", "officepbx ban list|rm ...", "List and lift the bans of sources that failed authentication too often.",
		banListCmd(stdout), banRmCmd(stdout))
}

func banListCmd(stdout io.Writer) *ffcli.Command {
	return dbCommand{
		name: "ban list", usage: "officepbx ban list [--db DSN]",
		help: "List the bans in force: the source IP, until when, the time left and the node that made it.",
		open: banOpen,
		run: func(ctx context.Context, _ *dbFlags, s *store.Store, _ []string) error {
			bans, err := s.Bans(ctx)
			if err != nil {
				return err
			}
			if len(bans) == 0 {
				fmt.Fprintln(stdout, "no bans in force")
				return nil
			}
			now := time.Now()
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "IP\tUNTIL\tREMAINING\tNODE")
			for _, b := range bans {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", b.IP, b.Until.Local().Format(time.DateTime),
					b.Until.Sub(now).Round(time.Second), dash(b.NodeID))
			}
			return tw.Flush()
		},
	}.command()
}

func banRmCmd(stdout io.Writer) *ffcli.Command {
	return dbCommand{
		name: "ban rm", usage: "officepbx ban rm IP [--db DSN]",
		help: "Lift the ban of a source IP on every node; its failures start counting afresh.",
		args: []string{"IP address"},
		open: banOpen,
		check: func(_ *dbFlags, args []string) error {
			if _, err := netip.ParseAddr(args[0]); err != nil {
				return usagef("ban rm: %q is not an IP address", args[0])
			}
			return nil
		},
		run: func(ctx context.Context, _ *dbFlags, s *store.Store, args []string) error {
			if err := s.LiftBan(ctx, args[0]); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("ban rm: no ban of %s in force", args[0])
				}
				return fmt.Errorf("ban rm: %w", err)
			}
			fmt.Fprintf(stdout, "ban of %s lifted\n", args[0])
			return nil
		},
	}.command()
}
