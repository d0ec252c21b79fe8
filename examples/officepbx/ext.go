package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/pbxkit/pbxkit/store"
)

func extCmd(stdout io.Writer) *ffcli.Command {
	return group("ext", "officepbx ext add|list|rm|set ...", "Manage extensions.",
		extAddCmd(stdout), extListCmd(stdout), extRmCmd(stdout), extSetCmd(stdout))
}

func extAddCmd(stdout io.Writer) *ffcli.Command {
	var password, name string
	return dbCommand{
		name: "ext add", usage: "officepbx ext add NUMBER --password PW [--name NAME] [--db DSN]", help: "Add an extension.",
		args: []string{"extension number"},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&password, "password", "", "SIP password (required)")
			fs.StringVar(&name, "name", "", "display name")
		},
		check: func(_ *dbFlags, args []string) error {
			if password == "" {
				return usagef("ext add: --password is required")
			}
			if err := checkNumber(args[0]); err != nil {
				return fmt.Errorf("ext add: %w", err)
			}
			return checkPassword("ext add", args[0], password)
		},
		run: func(ctx context.Context, d *dbFlags, s *store.Store, args []string) error {
			e := &store.Extension{Number: args[0], Name: name, Enabled: true}
			if err := e.SetPassword(d.domain, password); err != nil {
				return fmt.Errorf("ext add: %w", err)
			}
			if err := s.CreateExtension(ctx, e); err != nil {
				if errors.Is(err, store.ErrConflict) {
					return fmt.Errorf("ext add: extension %s already exists", e.Number)
				}
				return fmt.Errorf("ext add: %w", err)
			}
			fmt.Fprintf(stdout, "extension %s added\n", e.Number)
			return nil
		},
	}.command()
}

func extListCmd(stdout io.Writer) *ffcli.Command {
	return dbCommand{
		name: "ext list", usage: "officepbx ext list [--db DSN]", help: "List extensions and their registered contacts.",
		run: func(ctx context.Context, _ *dbFlags, s *store.Store, _ []string) error {
			exts, err := s.Extensions(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NUMBER\tNAME\tENABLED\tDND\tFORWARD-ALWAYS\tFORWARD-BUSY\tFORWARD-NOANSWER\tRECORD\tVOICEMAIL\tCONTACTS")
			for _, e := range exts {
				bs, err := s.Bindings(ctx, e.Number)
				if err != nil {
					return err
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Number, e.Name, onOff(e.Enabled), onOff(e.DND),
					dash(e.ForwardAlways), dash(e.ForwardBusy), dash(e.ForwardNoAnswer), onOff(e.Record), onOff(e.Voicemail), contacts(bs))
			}
			return tw.Flush()
		},
	}.command()
}

func extRmCmd(stdout io.Writer) *ffcli.Command {
	return dbCommand{
		name: "ext rm", usage: "officepbx ext rm NUMBER [--db DSN]", help: "Remove an extension with its registrations.",
		args: []string{"extension number"},
		run: func(ctx context.Context, _ *dbFlags, s *store.Store, args []string) error {
			if err := s.DeleteExtension(ctx, args[0]); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("ext rm: no extension %s", args[0])
				}
				return err
			}
			fmt.Fprintf(stdout, "extension %s removed\n", args[0])
			return nil
		},
	}.command()
}

func extSetCmd(stdout io.Writer) *ffcli.Command {
	var p store.ExtensionPatch
	return dbCommand{
		name:  "ext set",
		usage: "officepbx ext set NUMBER [--dnd on|off] [--forward-always T] [--forward-busy T] [--forward-noanswer T] [--password PW] [--enabled on|off] [--pickup-group G] [--record on|off] [--voicemail on|off] [--pin DIGITS]",
		help:  "Change an extension.",
		args:  []string{"extension number"},
		flags: func(fs *flag.FlagSet) {
			fs.Func("dnd", "do not disturb: on or off", onOffFlag(&p.DND))
			fs.Func("enabled", "on or off", onOffFlag(&p.Enabled))
			fs.Func("record", "record every call to or from the extension (default routing): on or off", onOffFlag(&p.Record))
			fs.Func("forward-always", "forward every call to T (extension or sip: URI; \"\" clears)", stringFlag(&p.ForwardAlways))
			fs.Func("forward-busy", "forward when busy to T", stringFlag(&p.ForwardBusy))
			fs.Func("forward-noanswer", "forward when not answered to T", stringFlag(&p.ForwardNoAnswer))
			fs.Func("password", "new SIP password (hashed for --domain)", stringFlag(&p.Password))
			fs.Func("name", "display name", stringFlag(&p.Name))
			fs.Func("pickup-group", "pickup group: its members answer each other's ringing calls with *8 (\"\" clears)", stringFlag(&p.PickupGroup))
			fs.Func("voicemail", "mailbox on or off: calls not answered go to voicemail", onOffFlag(&p.Voicemail))
			fs.Func("pin", "mailbox PIN, 4 to 16 digits, stored hashed (\"\" removes it)", stringFlag(&p.VMPIN))
			fs.Func("ring-timeout", "seconds of ringing before no-answer (0: PBX default)", func(s string) error {
				n, err := strconv.Atoi(s)
				if err != nil {
					return fmt.Errorf("want a number of seconds")
				}
				p.RingTimeout = &n
				return nil
			})
		},
		check: func(d *dbFlags, args []string) error {
			if p == (store.ExtensionPatch{}) {
				return usagef("ext set: nothing to change: give at least one flag")
			}
			if p.VMPIN != nil && *p.VMPIN != "" {
				if err := store.ValidatePIN(*p.VMPIN); err != nil {
					return usagef("ext set: --pin: %v", err)
				}
			}
			if p.Password != nil {
				p.Realm = &d.domain
				return checkPassword("ext set", args[0], *p.Password)
			}
			return nil
		},
		run: func(ctx context.Context, _ *dbFlags, s *store.Store, args []string) error {
			if _, err := s.UpdateExtension(ctx, args[0], p); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("ext set: no extension %s", args[0])
				}
				return fmt.Errorf("ext set: %w", err)
			}
			fmt.Fprintf(stdout, "extension %s updated\n", args[0])
			return nil
		},
	}.command()
}

// checkNumber refuses extension numbers a phone cannot dial: officepbx's extensions are digits
// (the store takes names too, for queues and SIP users of trunks).
func checkNumber(n string) error {
	if err := store.ValidateNumber(n); err != nil {
		return err
	}
	for _, r := range n {
		if r < '0' || r > '9' {
			return fmt.Errorf("invalid number %q: an extension number is digits only, e.g. 100", n)
		}
	}
	return nil
}

// checkPassword refuses a password anyone who knows the extension would guess: scanners that
// look for open PBXs try the number itself first.
func checkPassword(cmd, number, pw string) error {
	if pw == number {
		return usagef("%s: the password must not be the extension number: scanners try that first", cmd)
	}
	return nil
}

// contacts shows an extension's registered contact URIs in one column, comma-separated, "-" for
// none: no spaces, so scripts can take the last field.
func contacts(bs []store.Binding) string {
	if len(bs) == 0 {
		return "-"
	}
	uris := make([]string, len(bs))
	for i, b := range bs {
		uris[i] = b.Contact
	}
	return strings.Join(uris, ",")
}
