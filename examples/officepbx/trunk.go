package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/pbxkit/pbxkit/store"
)

func trunkCmd(stdout io.Writer) *ffcli.Command {
	return group("trunk", "officepbx trunk add|list|rm ...", "Manage outbound trunks (SIP providers).",
		trunkAddCmd(stdout), trunkListCmd(stdout), trunkRmCmd(stdout))
}

func trunkAddCmd(stdout io.Writer) *ffcli.Command {
	var t store.Trunk
	return dbCommand{
		name: "trunk add",
		usage: "officepbx trunk add NAME --host HOST[:PORT] [--user U --password P] [--register] " +
			"[--caller-id NUMBER] [--prefix P] [--db DSN]",
		help: "Add a trunk: numbers that are no extension are called through it, calls from its host come in.",
		args: []string{"trunk name"},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&t.Host, "host", "", "the provider's host name or IP address, with :PORT when not 5060 (required)")
			fs.StringVar(&t.Username, "user", "", "account at the provider, for digest authentication")
			fs.StringVar(&t.Password, "password", "", "password of the account (stored as given: digest answers need it)")
			fs.BoolVar(&t.Register, "register", false, "keep a registration at the provider")
			fs.StringVar(&t.CallerID, "caller-id", "", "From user of calls going out (default: the calling extension's number)")
			fs.StringVar(&t.Prefix, "prefix", "", "only numbers starting with it go out here; it is stripped")
		},
		check: func(_ *dbFlags, args []string) error {
			t.Name = args[0]
			if t.Host == "" {
				return usagef("trunk add: --host is required")
			}
			if err := t.Validate(); err != nil {
				return usagef("trunk add: %v", err)
			}
			return nil
		},
		run: func(ctx context.Context, _ *dbFlags, s *store.Store, _ []string) error {
			if err := s.CreateTrunk(ctx, &t); err != nil {
				if errors.Is(err, store.ErrConflict) {
					return usagef("trunk add: trunk %s already exists", t.Name)
				}
				return fmt.Errorf("trunk add: %w", err)
			}
			fmt.Fprintf(stdout, "trunk %s added\n", t.Name)
			return nil
		},
	}.command()
}

func trunkListCmd(stdout io.Writer) *ffcli.Command {
	return dbCommand{
		name: "trunk list", usage: "officepbx trunk list [--db DSN]",
		help: "List trunks and the state of their registrations as the PBX last saw it.",
		run: func(ctx context.Context, _ *dbFlags, s *store.Store, _ []string) error {
			ts, err := s.Trunks(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tHOST\tUSER\tREGISTER\tCALLER-ID\tPREFIX\tSTATE")
			for _, t := range ts {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.Host, dash(t.Username), onOff(t.Register),
					dash(t.CallerID), dash(t.Prefix), trunkState(t))
			}
			return tw.Flush()
		},
	}.command()
}

// trunkState describes a trunk's registration as the PBX last stored it.
func trunkState(t store.Trunk) string {
	switch {
	case !t.Register:
		return "-"
	case t.RegState == "":
		return "not yet registered"
	}
	s := t.RegState
	if t.RegDetail != "" {
		s += " (" + t.RegDetail + ")"
	}
	if t.RegAt != nil {
		s += " at " + t.RegAt.Local().Format(time.DateTime)
	}
	return s
}

func trunkRmCmd(stdout io.Writer) *ffcli.Command {
	return dbCommand{
		name: "trunk rm", usage: "officepbx trunk rm NAME [--db DSN]", help: "Remove a trunk.",
		args: []string{"trunk name"},
		run: func(ctx context.Context, _ *dbFlags, s *store.Store, args []string) error {
			if err := s.DeleteTrunk(ctx, args[0]); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return usagef("trunk rm: no trunk %s", args[0])
				}
				return err
			}
			fmt.Fprintf(stdout, "trunk %s removed\n", args[0])
			return nil
		},
	}.command()
}
