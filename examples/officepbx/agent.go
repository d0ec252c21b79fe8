package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/pbxkit/pbxkit/store"
)

// agentCmd is "queue pause|unpause|login|logout QUEUE EXT": an agent's state in a queue, or in
// every queue of the agent when QUEUE is "all". A running PBX sees the change at its next offer.
func agentCmd(stdout io.Writer, verb string) *ffcli.Command {
	var reason string
	usage := "officepbx queue " + verb + " QUEUE|all EXT"
	if verb == "pause" {
		usage += " [--reason R]"
	}
	return dbCommand{
		name: "queue " + verb, usage: usage + " [--db DSN]",
		help: map[string]string{"pause": "Pause an agent (no calls offered) with a reason.", "unpause": "Take an agent off pause.",
			"login": "Log an agent in to take calls.", "logout": "Log an agent out."}[verb],
		args: []string{"queue name (or all)", "extension"},
		flags: func(fs *flag.FlagSet) {
			if verb == "pause" {
				fs.StringVar(&reason, "reason", "", "why the agent pauses (shown in queue list), at most 64 characters")
			}
		},
		check: func(_ *dbFlags, args []string) error {
			if args[0] != "all" {
				if err := store.ValidateNumber(args[0]); err != nil {
					return usagef("queue %s: bad queue name %q", verb, args[0])
				}
			}
			if err := store.ValidateNumber(args[1]); err != nil {
				return usagef("queue %s: bad extension %q", verb, args[1])
			}
			if len(reason) > store.MaxPauseReason || strings.ContainsFunc(reason, func(r rune) bool { return r < ' ' || r == 0x7f }) {
				return usagef("queue pause: --reason must be at most %d printable characters", store.MaxPauseReason)
			}
			return nil
		},
		run: func(ctx context.Context, _ *dbFlags, s *store.Store, args []string) error {
			queue, ext := args[0], args[1]
			if queue == "all" {
				queue = ""
			}
			n, err := s.UpdateQueueMembers(ctx, queue, ext, agentPatch(verb, reason))
			switch {
			case errors.Is(err, store.ErrNotFound) && queue == "":
				return fmt.Errorf("queue %s: extension %s is in no queue", verb, ext)
			case errors.Is(err, store.ErrNotFound):
				return fmt.Errorf("queue %s: extension %s is not a member of queue %s", verb, ext, queue)
			case err != nil:
				return err
			}
			fmt.Fprintf(stdout, "agent %s %s in %d queue(s)\n", ext, map[string]string{"pause": "paused", "unpause": "unpaused",
				"login": "logged in", "logout": "logged out"}[verb], n)
			return nil
		},
	}.command()
}

func agentPatch(verb, reason string) store.QueueMemberPatch {
	yes, no := true, false
	switch verb {
	case "pause":
		return store.QueueMemberPatch{Paused: &yes, PauseReason: &reason}
	case "unpause":
		return store.QueueMemberPatch{Paused: &no}
	case "login":
		return store.QueueMemberPatch{LoggedOut: &no}
	}
	return store.QueueMemberPatch{LoggedOut: &yes}
}

// memberState shows a queue member in queue list: "101", "101(paused:lunch)", "102(out)".
func memberState(m store.QueueMember) string {
	var st []string
	if m.LoggedOut {
		st = append(st, "out")
	}
	if m.Paused {
		st = append(st, strings.TrimSuffix("paused:"+m.PauseReason, ":"))
	}
	if m.Penalty > 0 {
		st = append(st, fmt.Sprintf("penalty %d", m.Penalty))
	}
	if len(st) == 0 {
		return m.Extension
	}
	return m.Extension + "(" + strings.Join(st, ",") + ")"
}

// memberList reads a --member list: extension numbers, each an existing extension, each once.
func memberList(ctx context.Context, s *store.Store, cmd, list string) ([]string, error) {
	var out []string
	for _, m := range strings.Split(list, ",") {
		if m = strings.TrimSpace(m); m == "" {
			continue
		}
		if slices.Contains(out, m) {
			return nil, usagef("%s: member %s is listed twice", cmd, m)
		}
		if err := store.ValidateNumber(m); err != nil {
			return nil, usagef("%s: member %q is not an extension number", cmd, m)
		}
		if _, err := s.Extension(ctx, m); errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("%s: member %s is not an extension", cmd, m)
		} else if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}
