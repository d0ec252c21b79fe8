package main

import (
	"flag"
	"fmt"
	"net"
	"time"
)

// config is the soak's command line.
type config struct {
	sipAddr      string
	httpAddr     string
	dbURL        string
	proxyListen  string
	proxyTarget  string
	lo, hi       int // callee extensions, from --exts
	nCallers     int
	duration     time.Duration
	rate         float64
	holdMin      time.Duration
	holdMax      time.Duration
	mediaTimeout time.Duration
	silentEvery  time.Duration
	garbageEvery time.Duration
	garbageN     int
	dbCut        time.Duration
	phoneDown    time.Duration
	baseSettle   time.Duration
	endMin       time.Duration
	endMax       time.Duration
	gorTol       int
	fdTol        int
	heapTol      float64
	rssGrowth    float64
	csvPath      string
	pprofDir     string

	pbx *net.UDPAddr // sipAddr, resolved
}

// parseFlags reads the command line; it exits through fatal on a bad value.
func parseFlags() config {
	var c config
	var exts string
	flag.StringVar(&c.sipAddr, "sip", "127.0.0.1:5060", "the PBX's SIP address (UDP)")
	flag.StringVar(&c.httpAddr, "http", "127.0.0.1:8080", "the PBX's --http address (/metrics)")
	flag.StringVar(&c.dbURL, "db", "", "Postgres URL of the PBX's database, direct (for the record check)")
	flag.StringVar(&c.proxyListen, "proxy", "127.0.0.1:15432", "where the database proxy listens (the PBX's --db names it)")
	flag.StringVar(&c.proxyTarget, "proxy-target", "127.0.0.1:5432", "the database the proxy forwards to")
	flag.StringVar(&exts, "exts", "2000-2039", "callee extensions LO-HI, each a phone of the soak (they must exist)")
	flag.IntVar(&c.nCallers, "callers", 4, "caller phones (from the trusted address)")
	flag.DurationVar(&c.duration, "duration", 30*time.Minute, "how long calls are placed")
	flag.Float64Var(&c.rate, "rate", 10, "new calls a second")
	flag.DurationVar(&c.holdMin, "hold-min", 10*time.Second, "shortest hold time")
	flag.DurationVar(&c.holdMax, "hold-max", 20*time.Second, "longest hold time")
	flag.DurationVar(&c.mediaTimeout, "media-timeout", 5*time.Second, "the PBX's --media-timeout")
	flag.DurationVar(&c.silentEvery, "silent-every", 15*time.Second, "a callee goes silent mid-call (no BYE, no RTP, no answers) this often")
	flag.DurationVar(&c.garbageEvery, "garbage-every", 30*time.Second, "a burst of garbage datagrams, malformed SIP and garbage TCP this often")
	flag.IntVar(&c.garbageN, "garbage", 400, "datagrams per garbage burst")
	flag.DurationVar(&c.dbCut, "db-cut", 10*time.Second, "how long the database is cut (at half-time)")
	flag.DurationVar(&c.phoneDown, "phone-down", 15*time.Second, "how long a killed callee phone stays away (killed at 30% and 70% of the run)")
	flag.DurationVar(&c.baseSettle, "baseline-settle", 35*time.Second, "wait after the registrations before the baseline")
	flag.DurationVar(&c.endMin, "settle-min", 35*time.Second, "wait at least this long after the last call before the final check")
	flag.DurationVar(&c.endMax, "settle-max", 3*time.Minute, "wait at most this long for the gauges to come back")
	flag.IntVar(&c.gorTol, "goroutine-tolerance", 10, "goroutines allowed above the baseline at the end")
	flag.IntVar(&c.fdTol, "fd-tolerance", 2, "descriptors allowed above the baseline at the end, the database pool's aside")
	flag.Float64Var(&c.heapTol, "heap-tolerance", 4<<20, "live heap (after a collection) allowed above the baseline's at the end, bytes")
	flag.Float64Var(&c.rssGrowth, "rss-growth", 0.20, "RSS at the end may exceed its value at a third of the run by this fraction")
	flag.StringVar(&c.csvPath, "csv", "", "write every sample to this CSV file")
	flag.StringVar(&c.pprofDir, "pprof-dir", "", "save the PBX's goroutines and heap (officepbx --pprof) at the baseline, a third of the way and the end here")
	flag.Parse()

	var err error
	if c.pbx, err = net.ResolveUDPAddr("udp", c.sipAddr); err != nil {
		fatal("--sip: %v", err)
	}
	if _, err := fmt.Sscanf(exts, "%d-%d", &c.lo, &c.hi); err != nil || c.hi < c.lo {
		fatal("--exts %q: want LO-HI", exts)
	}
	return c
}
