package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/pbxkit/pbxkit/store"
)

func cdrCmd(stdout io.Writer) *ffcli.Command {
	return group("cdr", "officepbx cdr list ...", "Show call records.", cdrListCmd(stdout))
}

func cdrListCmd(stdout io.Writer) *ffcli.Command {
	var limit int
	var callID string
	return dbCommand{
		name: "cdr list", usage: "officepbx cdr list [--limit N] [--call-id ID] [--db DSN]",
		help: "List call records, newest first. DIALLED is what the caller dialled, CALLEE who answered " +
			"(or was last tried); SEGMENTS shows who talked to whom, and how long, when a call was handed on.",
		flags: func(fs *flag.FlagSet) {
			fs.IntVar(&limit, "limit", 20, "records to show at most")
			fs.StringVar(&callID, "call-id", "", "only the call with this Call-ID")
		},
		check: func(*dbFlags, []string) error {
			if limit < 1 || limit > 10000 {
				return usagef("cdr list: --limit %d: want 1 to 10000", limit)
			}
			return nil
		},
		run: func(ctx context.Context, _ *dbFlags, s *store.Store, _ []string) error {
			cdrs, err := s.CDRs(ctx, store.CDRFilter{CallID: callID, Limit: limit})
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			// REASON stays last: it is the one column with spaces in it.
			fmt.Fprintln(tw, "START\tCALL-ID\tCALLER\tDIALLED\tCALLEE\tDISPOSITION\tSTATUS\tDURATION\tBILLABLE\tHANGUP-BY\tSEGMENTS\tRECORDING\tREASON")
			for _, c := range cdrs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%ds\t%ds\t%s\t%s\t%s\t%s\n", c.StartAt.Local().Format(time.DateTime),
					dash(c.CallID), dash(c.Caller), dash(c.Dialled), dash(c.Callee), c.Disposition, c.Status, c.DurationSec, c.BillableSec,
					dash(c.HangupBy), segments(c.Segments), dash(strings.ReplaceAll(c.Recording, "\n", ",")), dash(c.Reason))
			}
			return tw.Flush()
		},
	}.command()
}

// segments shows a call's segments in one column, "100>201:21s,100>202:41s", for calls that were
// handed on; a single segment says no more than the CALLER and CALLEE columns, so it is "-".
func segments(segs []store.CDRSegment) string {
	if len(segs) < 2 {
		return "-"
	}
	parts := make([]string, len(segs))
	for i, s := range segs {
		parts[i] = fmt.Sprintf("%s>%s:%ds", dash(s.Caller), dash(s.Callee), s.DurationSec())
	}
	return strings.Join(parts, ",")
}
