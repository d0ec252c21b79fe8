package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/pbxkit/pbxkit/store"
)

func queueCmd(stdout io.Writer) *ffcli.Command {
	return group("queue", "officepbx queue add|list|rm|pause|unpause|login|logout ...", "Manage call queues and their agents.",
		queueAddCmd(stdout), queueListCmd(stdout), queueRmCmd(stdout),
		agentCmd(stdout, "pause"), agentCmd(stdout, "unpause"), agentCmd(stdout, "login"), agentCmd(stdout, "logout"))
}

func queueAddCmd(stdout io.Writer) *ffcli.Command {
	var q store.Queue
	var members string
	return dbCommand{
		name: "queue add", usage: "officepbx queue add NAME [--strategy S] [--member EXT,...] [--max-wait SEC] [--max-len N] [--wrapup SEC] [--ring-timeout SEC]",
		help: "Add a call queue.", args: []string{"queue name"},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&q.Strategy, "strategy", store.StrategyRingAll, "how callers are offered to members: "+strings.Join(store.Strategies, ", "))
			fs.StringVar(&members, "member", "", "comma-separated member extensions, in order of preference")
			fs.IntVar(&q.MaxWait, "max-wait", 0, "seconds a caller waits at most (0: no limit)")
			fs.IntVar(&q.MaxLen, "max-len", 0, "callers waiting at most (0: no limit)")
			fs.IntVar(&q.Announce, "announce", 0, "seconds between position announcements (0: once)")
			fs.StringVar(&q.Music, "music", "", "hold audio: a WAV file or \"tone\"")
			fs.IntVar(&q.WrapUp, "wrapup", 0, "seconds an agent is left alone after each queue call")
			fs.IntVar(&q.RingTimeout, "ring-timeout", 0, "seconds agents ring per attempt (0: 15)")
		},
		check: func(_ *dbFlags, args []string) error {
			if !slices.Contains(store.Strategies, q.Strategy) {
				return usagef("queue add: --strategy %q: want one of %s", q.Strategy, strings.Join(store.Strategies, ", "))
			}
			if q.MaxWait < 0 || q.MaxLen < 0 || q.Announce < 0 || q.WrapUp < 0 || q.RingTimeout < 0 {
				return usagef("queue add: --max-wait, --max-len, --announce, --wrapup and --ring-timeout must not be negative")
			}
			return nil
		},
		run: func(ctx context.Context, _ *dbFlags, s *store.Store, args []string) error {
			q.Name = args[0]
			list, err := memberList(ctx, s, "queue add", members)
			if err != nil {
				return err
			}
			for i, m := range list {
				q.Members = append(q.Members, store.QueueMember{Extension: m, Position: i})
			}
			if err := s.CreateQueue(ctx, &q); err != nil {
				if errors.Is(err, store.ErrConflict) {
					return fmt.Errorf("queue add: queue %s already exists", q.Name)
				}
				return fmt.Errorf("queue add: %w", err)
			}
			fmt.Fprintf(stdout, "queue %s added with %d members\n", q.Name, len(q.Members))
			return nil
		},
	}.command()
}

func queueListCmd(stdout io.Writer) *ffcli.Command {
	return dbCommand{
		name: "queue list", usage: "officepbx queue list [--db DSN]", help: "List call queues.",
		run: func(ctx context.Context, _ *dbFlags, s *store.Store, _ []string) error {
			qs, err := s.Queues(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSTRATEGY\tMAX-WAIT\tMAX-LEN\tANNOUNCE\tWRAPUP\tRING\tMUSIC\tMEMBERS")
			for _, q := range qs {
				var ms []string
				for _, m := range q.Members {
					ms = append(ms, memberState(m))
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", q.Name, q.Strategy, q.MaxWait, q.MaxLen, q.Announce,
					q.WrapUp, q.RingTimeout, dash(q.Music), dash(strings.Join(ms, ",")))
			}
			return tw.Flush()
		},
	}.command()
}

func queueRmCmd(stdout io.Writer) *ffcli.Command {
	return dbCommand{
		name: "queue rm", usage: "officepbx queue rm NAME [--db DSN]", help: "Remove a call queue.",
		args: []string{"queue name"},
		run: func(ctx context.Context, _ *dbFlags, s *store.Store, args []string) error {
			if err := s.DeleteQueue(ctx, args[0]); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("queue rm: no queue %s", args[0])
				}
				return err
			}
			fmt.Fprintf(stdout, "queue %s removed\n", args[0])
			return nil
		},
	}.command()
}

func migrateCmd(stdout io.Writer) *ffcli.Command {
	var down bool
	return dbCommand{
		name: "migrate", usage: "officepbx migrate [--db DSN] [--down]",
		help:  "Bring the database schema up to date (or one step down).",
		flags: func(fs *flag.FlagSet) { fs.BoolVar(&down, "down", false, "roll the newest migration back instead") },
		open:  []store.Option{store.WithoutMigrate()},
		run: func(ctx context.Context, _ *dbFlags, s *store.Store, _ []string) error {
			var v int64
			var err error
			if down {
				v, err = s.MigrateDown(ctx)
			} else {
				v, err = s.MigrateUp(ctx)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "schema at version %d\n", v)
			return nil
		},
	}.command()
}
