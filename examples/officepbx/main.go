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
	"syscall"
	"time"

	"github.com/emiago/sipgo/sip"
)

// transactionLinger is how long a finished SIP transaction is kept to absorb retransmissions
// (RFC 3261 Timers D and J, RFC 6026 Timers L and M; 32 s by the RFCs). Kamailio's tm keeps them
// 5 s (wt_timer). A retransmission that comes later is harmless here: a BYE's gets 481, an
// INVITE's or a 2xx's is matched to its dialog by the call core. At 1,000 calls/s the RFC
// figure kept about four transactions per call alive for 32 s, which was most of the PBX's memory
// under load. The timers are sipgo package variables, so they are set here, once, before anything
// runs, rather than by the pbx library.
const transactionLinger = 5 * time.Second

func main() {
	sip.Timer_D, sip.Timer_J, sip.Timer_L, sip.Timer_M = transactionLinger, transactionLinger, transactionLinger, transactionLinger
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
