package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/pbxkit/pbxkit/store"
)

func groupCmd(stdout io.Writer) *ffcli.Command {
	return group("group", "officepbx group add|list|rm ...", "Manage ring groups (numbers that ring several extensions).",
		groupAddCmd(stdout), groupListCmd(stdout), groupRmCmd(stdout))
}

func groupAddCmd(stdout io.Writer) *ffcli.Command {
	var g store.RingGroup
	var members string
	return dbCommand{
		name:  "group add",
		usage: "officepbx group add NUMBER --strategy parallel|hunt --member EXT,... [--timeout SEC] [--db DSN]",
		help:  "Add a ring group: a call to NUMBER rings the members all at once (parallel) or one after the other (hunt).",
		args:  []string{"group number"},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&g.Strategy, "strategy", store.GroupParallel, "parallel (all at once) or hunt (in the order given)")
			fs.StringVar(&members, "member", "", "comma-separated member extensions, in hunt order")
			fs.IntVar(&g.MemberTimeout, "timeout", 0, "seconds each member rings in a hunt, or all in parallel (0: the PBX's ring timeout)")
		},
		check: func(_ *dbFlags, args []string) error {
			switch {
			case store.ValidateNumber(args[0]) != nil:
				return usagef("group add: %q is not a usable number (digits, letters, '.', '-', '_')", args[0])
			case g.Strategy != store.GroupParallel && g.Strategy != store.GroupHunt:
				return usagef("group add: --strategy %q: want parallel or hunt", g.Strategy)
			case g.MemberTimeout < 0 || g.MemberTimeout > 3600:
				return usagef("group add: --timeout %d: want 0 to 3600 seconds", g.MemberTimeout)
			case strings.Trim(members, ", ") == "":
				return usagef("group add: --member is required")
			}
			return nil
		},
		run: func(ctx context.Context, _ *dbFlags, s *store.Store, args []string) error {
			g.Number = args[0]
			list, err := memberList(ctx, s, "group add", members)
			if err != nil {
				return err
			}
			for _, m := range list {
				g.Members = append(g.Members, store.RingGroupMember{Extension: m})
			}
			if err := s.CreateGroup(ctx, &g); err != nil {
				if errors.Is(err, store.ErrConflict) {
					return fmt.Errorf("group add: %s is already a group's or an extension's number", g.Number)
				}
				return fmt.Errorf("group add: %w", err)
			}
			fmt.Fprintf(stdout, "group %s added (%s) with %d members\n", g.Number, g.Strategy, len(g.Members))
			return nil
		},
	}.command()
}

func groupListCmd(stdout io.Writer) *ffcli.Command {
	return dbCommand{
		name: "group list", usage: "officepbx group list [--db DSN]", help: "List ring groups.",
		run: func(ctx context.Context, _ *dbFlags, s *store.Store, _ []string) error {
			gs, err := s.Groups(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NUMBER\tSTRATEGY\tTIMEOUT\tMEMBERS")
			for _, g := range gs {
				var ms []string
				for _, m := range g.Members {
					ms = append(ms, m.Extension)
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", g.Number, g.Strategy, g.MemberTimeout, dash(strings.Join(ms, ",")))
			}
			return tw.Flush()
		},
	}.command()
}

func groupRmCmd(stdout io.Writer) *ffcli.Command {
	return dbCommand{
		name: "group rm", usage: "officepbx group rm NUMBER [--db DSN]", help: "Remove a ring group.",
		args: []string{"group number"},
		run: func(ctx context.Context, _ *dbFlags, s *store.Store, args []string) error {
			if err := s.DeleteGroup(ctx, args[0]); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("group rm: no group %s", args[0])
				}
				return err
			}
			fmt.Fprintf(stdout, "group %s removed\n", args[0])
			return nil
		},
	}.command()
}
