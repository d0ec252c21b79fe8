// Command officepbx is a small office phone system built on pbxkit: extensions in an embedded
// SQLite file (or Postgres), a SIP registrar with digest authentication, and the CLI to manage it.
//
//	officepbx [serve] [--config FILE] [--sip ADDR] [--db DSN] [--http ADDR] [--trust CIDR,...] [--domain NAME]
//	officepbx ext add NUMBER --password PW [--name NAME]
//	officepbx ext list | ext rm NUMBER | ext set NUMBER [--dnd on|off] [--password PW] ...
//	officepbx queue add NAME [--strategy S] [--member EXT,...] | queue list | queue rm NAME
//	officepbx cdr list [--limit N] [--call-id ID]
//	officepbx migrate [--db DSN] [--down]
//
// Every flag of serve can also come from the environment (PBX_SIP, PBX_DB, PBX_HTTP, ...) or from
// a config file of "flag value" lines given with --config.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// gcPercent is the garbage collector's target (GOGC) unless the environment sets GOGC: the heap
// may grow to five times what is live before a collection. Under call load at the default of 100
// the collector took about a sixth of the PBX's CPU; a PBX's live heap is small (a few KB per
// call), so trading memory for CPU is the right default for a server.
const gcPercent = 400

func main() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
