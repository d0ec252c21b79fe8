package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/pbxkit/pbxkit/store"
)

func vmCmd(stdout io.Writer) *ffcli.Command {
	return group("vm", "officepbx vm list|play|rm ...", "Manage voicemail messages.",
		vmListCmd(stdout), vmPlayCmd(stdout), vmRmCmd(stdout))
}

func vmListCmd(stdout io.Writer) *ffcli.Command {
	return dbCommand{
		name: "vm list", usage: "officepbx vm list [EXT] [--db DSN]",
		help: "List voicemail messages, of one mailbox or of all, oldest first. FOLDER is new until heard.",
		run: func(ctx context.Context, _ *dbFlags, s *store.Store, args []string) error {
			mailbox := ""
			if len(args) == 1 {
				mailbox = args[0]
				if _, err := s.Extension(ctx, mailbox); errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("vm list: no extension %s", mailbox)
				}
			}
			msgs, err := s.VoicemailMessages(ctx, mailbox, "")
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "MAILBOX\tID\tFOLDER\tRECEIVED\tSECONDS\tFROM\tNAME\tFILE")
			for _, m := range msgs {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\t%s\t%s\n", m.Mailbox, m.ID, m.Folder,
					m.CreatedAt.Local().Format(time.DateTime), m.Seconds, dash(m.Caller), dash(m.CallerName), m.Path)
			}
			return tw.Flush()
		},
		optionalArg: "extension number",
	}.command()
}

// vmMessage parses "EXT ID" and reads the message.
func vmMessage(ctx context.Context, cmd string, s *store.Store, args []string) (*store.VoicemailMessage, error) {
	id, err := strconv.ParseInt(args[1], 10, 64)
	if err != nil || id <= 0 {
		return nil, usagef("%s: message ID %q is not a number from 'officepbx vm list'", cmd, args[1])
	}
	m, err := s.Voicemail(ctx, args[0], id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%s: mailbox %s has no message %d", cmd, args[0], id)
	}
	return m, err
}

func vmPlayCmd(stdout io.Writer) *ffcli.Command {
	var out string
	return dbCommand{
		name: "vm play", usage: "officepbx vm play EXT ID [--out FILE|-] [--db DSN]",
		help: "Print where a message's WAV file is, or copy it to FILE (- for standard output, " +
			"e.g. '| aplay'). The message stays new: only its owner hearing it marks it heard.",
		args: []string{"extension number", "message ID"},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&out, "out", "", "copy the WAV file here (- for standard output) instead of printing its path")
		},
		run: func(ctx context.Context, _ *dbFlags, s *store.Store, args []string) error {
			m, err := vmMessage(ctx, "vm play", s, args)
			if err != nil {
				return err
			}
			if out == "" {
				fmt.Fprintln(stdout, m.Path)
				return nil
			}
			return copyWAV(m.Path, out, stdout)
		},
	}.command()
}

// copyWAV copies a message's file to dst ("-": w).
func copyWAV(src, dst string, w io.Writer) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("vm play: %w", err)
	}
	defer in.Close()
	if dst == "-" {
		_, err = io.Copy(w, in)
		return err
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("vm play: %w", err)
	}
	if _, err := io.Copy(f, in); err != nil {
		f.Close()
		return fmt.Errorf("vm play: %w", err)
	}
	return f.Close()
}

func vmRmCmd(stdout io.Writer) *ffcli.Command {
	return dbCommand{
		name: "vm rm", usage: "officepbx vm rm EXT ID [--db DSN]",
		help: "Delete a voicemail message and its WAV file; the mailbox's message-waiting lamp follows.",
		args: []string{"extension number", "message ID"},
		run: func(ctx context.Context, _ *dbFlags, s *store.Store, args []string) error {
			m, err := vmMessage(ctx, "vm rm", s, args)
			if err != nil {
				return err
			}
			if _, err := s.DeleteVoicemail(ctx, m.Mailbox, m.ID); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("vm rm: mailbox %s has no message %d", m.Mailbox, m.ID)
				}
				return fmt.Errorf("vm rm: %w", err)
			}
			fmt.Fprintf(stdout, "message %d of mailbox %s removed\n", m.ID, m.Mailbox)
			return nil
		},
	}.command()
}
