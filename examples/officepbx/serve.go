package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

func serveCmd(stderr io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("officepbx serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var d dbFlags
	d.register(fs)
	// Defaults and rules are pbx's (pbx.Default..., Config.Validate); this command only parses.
	var (
		sipAddr  = fs.String("sip", pbx.DefaultSIP, "address for SIP over UDP and TCP (env PBX_SIP)")
		httpAddr = fs.String("http", "", "address for the admin API and web console, /metrics, /healthz and /readyz, e.g. 127.0.0.1:8080 (env PBX_HTTP)")
		trust    = fs.String("trust", "", "comma-separated networks that need no authentication (env PBX_TRUST)")
		proxies  = fs.String("proxies", "", "comma-separated addresses of SIP proxies in front (a load balancer): still authenticated, but bans and rate limits apply to the phone behind them (env PBX_PROXIES)")
		dialplan = fs.String("dialplan", "", "Lua dialplan file (env PBX_DIALPLAN); default: ./dialplan.lua, else examples/officepbx/dialplan.lua, if present; \"\": none")
		rtpPorts = fs.String("rtp-ports", "", "relay media through the PBX on this RTP port range LO-HI, e.g. 20000-30000 (env PBX_RTP_PORTS)")
		rtpIP    = fs.String("rtp-ip", "", "IP the media relay binds and names in SDP (default: the --sip address)")
		mediaTO  = fs.Duration("media-timeout", pbx.DefaultMediaTimeout, "hang up answered calls without RTP for this long, unless on hold; negative: never (env PBX_MEDIA_TIMEOUT)")
		codecs   = fs.String("codecs", strings.Join(pbx.DefaultCodecs(), ","), "codecs allowed through the media relay (env PBX_CODECS)")
		logLevel = fs.String("log-level", "info", "debug, info, warn or error (env PBX_LOG_LEVEL)")
		nodeID   = fs.String("node-id", "", "name of this node among several sharing a database (default: host name; env PBX_NODE_ID)")
		beat     = fs.Duration("heartbeat", pbx.DefaultHeartbeatInterval, "how often this node refreshes its row in the nodes table (env PBX_HEARTBEAT)")
		digests  = fs.String("digest-algorithms", pbx.DefaultDigestAlgorithm, "digest algorithms offered, in order of preference: MD5, SHA-256 or both, e.g. SHA-256,MD5 (env PBX_DIGEST_ALGORITHMS)")
		ringFor  = fs.Duration("ring-timeout", pbx.DefaultRingTimeout, "how long calls ring before the caller gets 480 (env PBX_RING_TIMEOUT)")
		maxCalls = fs.Int("max-calls", 0, "concurrent calls at most; more get 503 (0: no limit; env PBX_MAX_CALLS)")
		planTime = fs.Duration("dialplan-timeout", pbx.DefaultDialplanTimeout, "run time a dialplan script may use per call, not counting ringing (env PBX_DIALPLAN_TIMEOUT)")
		spool    = fs.String("record-spool", "", "file where call records wait until the database takes them; \"off\": memory only (default: beside a SQLite database, else officepbx.records; env PBX_RECORD_SPOOL)")
		dataDir  = fs.String("data-dir", "", "folder for files the dialplan writes (call:record) and voicemail (voicemail/); default: officepbx-data beside a SQLite database, else in the working directory (env PBX_DATA_DIR)")
		recDir   = fs.String("recordings", "", "folder for call recordings, stereo WAV files (default: recordings/ in the data directory; env PBX_RECORDINGS)")
		maxConns = fs.Int("max-connections", pbx.DefaultMaxConnections, "TCP connections open at once, all sources; negative: no limit (env PBX_MAX_CONNECTIONS)")
		perSrc   = fs.Int("max-connections-per-source", pbx.DefaultMaxConnectionsPerSource, "TCP connections open at once from one IP (IPv6: one /64), --trust networks exempt; negative: no limit (env PBX_MAX_CONNECTIONS_PER_SOURCE)")
		connIdle = fs.Duration("conn-idle-timeout", pbx.DefaultConnIdleTimeout, "close TCP connections without a SIP message for this long, unless a phone registered over them; negative: never (env PBX_CONN_IDLE_TIMEOUT)")
		msgTime  = fs.Duration("message-timeout", pbx.DefaultMessageTimeout, "close TCP connections that take longer to send one SIP message (or to read one); negative: never (env PBX_MESSAGE_TIMEOUT)")
		srcRate  = fs.Int("source-rate", pbx.DefaultSourceRate, "new requests a second one source IP outside --trust may send (burst 4x); more are dropped; negative: no limit (env PBX_SOURCE_RATE)")
		failMax  = fs.Int("auth-fail-limit", pbx.DefaultAuthFailLimit, "failed authentications from one IP within --auth-fail-window that ban it; negative: never ban (env PBX_AUTH_FAIL_LIMIT)")
		failWin  = fs.Duration("auth-fail-window", pbx.DefaultAuthFailWindow, "the window --auth-fail-limit counts failures in (env PBX_AUTH_FAIL_WINDOW)")
		banFor   = fs.Duration("auth-ban-time", pbx.DefaultAuthBanTime, "how long a banned IP's requests are answered 403 (env PBX_AUTH_BAN_TIME)")
		overload = fs.Duration("overload-latency", pbx.DefaultOverloadLatency, "answer new requests 503 while the Go scheduler's p99 delay exceeds this; negative: never (env PBX_OVERLOAD_LATENCY)")
		apiToken = fs.String("api-token", "", "token of the admin API and web console on --http (env PBX_API_TOKEN; default: the stored one, or a new one printed once)")
		tlsAddr  = fs.String("tls", "", "address for SIP over TLS, e.g. 0.0.0.0:5061; needs --tls-cert and --tls-key (env PBX_TLS)")
		tlsCert  = fs.String("tls-cert", "", "TLS certificate chain, PEM; read again when it changes and on SIGHUP (env PBX_TLS_CERT)")
		tlsKey   = fs.String("tls-key", "", "TLS private key, PEM (env PBX_TLS_KEY)")
		extIP    = fs.String("external-ip", "", "public IP to name in SIP and SDP behind NAT, while binding a private one or 0.0.0.0 (env PBX_EXTERNAL_IP)")
		pprofOn  = fs.Bool("pprof", false, "also serve net/http/pprof under /debug/pprof/ on the --http address (for profiling; env PBX_PPROF)")
	)
	return &ffcli.Command{
		Name:       "serve",
		ShortUsage: "officepbx serve [--config FILE] [--sip ADDR] [--db DSN] [--dialplan FILE] [--http ADDR] [--trust CIDR,...] [--domain NAME]",
		ShortHelp:  "Run the PBX (the default command).",
		FlagSet:    fs,
		Options:    envOptions(),
		Exec: func(ctx context.Context, args []string) error {
			args, err := interspersed(fs, args)
			if err != nil {
				return err
			}
			if len(args) > 0 {
				return usagef("serve takes no arguments, got %q", args)
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
				return usagef("--log-level %q: want debug, info, warn or error", *logLevel)
			}
			if err := checkScript(*dialplan); err != nil {
				return err
			}
			rtpLo, rtpHi, err := parsePortRange(*rtpPorts)
			if err != nil {
				return usagef("--rtp-ports: %v", err)
			}
			trusted, err := pbx.ParseTrusted(*trust)
			if err != nil {
				return usagef("--trust: %v", err)
			}
			front, err := pbx.ParseTrusted(*proxies)
			if err != nil {
				return usagef("--proxies: %v", err)
			}
			var algs []string
			for _, a := range splitList(*digests) {
				algs = append(algs, strings.ToUpper(a))
			}
			cfg := pbx.Config{
				SIP: *sipAddr, Database: d.db, Domain: d.domain, Trusted: trusted, NodeID: *nodeID,
				DigestAlgorithms: algs, RingTimeout: *ringFor, MaxCalls: *maxCalls,
				DialplanScript: *dialplan, DialplanTimeout: *planTime,
				RTPPortMin: rtpLo, RTPPortMax: rtpHi, RTPAddress: *rtpIP, MediaTimeout: *mediaTO,
				MaxConnections: *maxConns, MaxConnectionsPerSource: *perSrc, ConnIdleTimeout: *connIdle, MessageTimeout: *msgTime,
				Codecs: splitList(*codecs), RecordSpool: recordSpool(*spool, d.db),
				DataDir: dataDirectory(*dataDir, d.db), RecordingsDir: absPath(*recDir),
				SourceRate: *srcRate, SourceBurst: sourceBurst(*srcRate), OverloadLatency: *overload,
				AuthFailLimit: *failMax, AuthFailWindow: *failWin, AuthBanTime: *banFor,
				TLS: *tlsAddr, TLSCert: *tlsCert, TLSKey: *tlsKey, ExternalIP: *extIP,
				Proxies: front, NodeHTTP: *httpAddr, Version: buildVersion(), HeartbeatInterval: *beat,
			}
			if err := cfg.Validate(); err != nil {
				return flagErrors(err)
			}
			log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
			if *pprofOn && *httpAddr == "" {
				return usagef("--pprof needs --http ADDR")
			}
			return serve(ctx, log, cfg, httpOptions{addr: *httpAddr, pprof: *pprofOn, apiToken: *apiToken, out: stderr})
		},
	}
}

// checkScript fails early, as a usage error, when --dialplan names no file: pbx.New would fail
// too, but only after opening the database, and with an error that does not name the flag.
func checkScript(path string) error {
	if path == "" {
		return nil
	}
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return usagef("--dialplan: %v", err)
	case fi.IsDir():
		return usagef("--dialplan %s: is a folder; name the script file", path)
	}
	return nil
}

// parsePortRange reads the syntax "LO-HI"; "" is no range. Which ranges are valid is pbx's rule
// (Config.Validate).
func parsePortRange(s string) (lo, hi int, err error) {
	if s == "" {
		return 0, 0, nil
	}
	a, b, ok := strings.Cut(s, "-")
	if ok {
		lo, err = strconv.Atoi(strings.TrimSpace(a))
		if err == nil {
			hi, err = strconv.Atoi(strings.TrimSpace(b))
		}
	}
	if !ok || err != nil {
		return 0, 0, fmt.Errorf("%q: want LO-HI, e.g. 20000-30000", s)
	}
	return lo, hi, nil
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// sourceBurst keeps pbx's ratio of burst to rate (DefaultSourceBurst to DefaultSourceRate) for a
// --source-rate given on the command line.
func sourceBurst(rate int) int {
	if rate <= 0 {
		return 0
	}
	return rate * pbx.DefaultSourceBurst / pbx.DefaultSourceRate
}

func serve(ctx context.Context, log *slog.Logger, cfg pbx.Config, ho httpOptions) error {
	httpAddr, withPprof, out := ho.addr, ho.pprof, ho.out
	p, err := pbx.New(cfg, pbx.WithLogger(log))
	if err != nil {
		return err
	}
	warnRealmMismatch(ctx, log, p.Config())
	if err := welcome(ctx, out, p, httpAddr); err != nil {
		p.Shutdown(context.Background())
		return err
	}
	errc := make(chan error, 2)
	var srv *http.Server
	if httpAddr != "" {
		ln, err := net.Listen("tcp", httpAddr)
		if err != nil {
			p.Shutdown(context.Background())
			return fmt.Errorf("--http %s: %w", httpAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(p.Metrics(), promhttp.HandlerOpts{}))
		mux.Handle("GET /healthz", healthz(p))
		mux.Handle("GET /readyz", readyz(p))
		adm, err := startAdmin(ctx, log, p, mux, ho)
		if err != nil {
			ln.Close()
			p.Shutdown(context.Background())
			return err
		}
		if withPprof {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		// net/http's own errors (its accept back-off among them) go to the log, not to stderr raw.
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second,
			ErrorLog: slog.NewLogLogger(log.With("component", "http").Handler(), slog.LevelWarn)}
		srv.RegisterOnShutdown(adm.Close)
		log.Info("http listening", "addr", ln.Addr().String())
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("http: %w", err)
			}
		}()
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { errc <- p.Run(runCtx) }()
	// SIGHUP reloads the dialplan and the TLS certificate (what does not load is logged and what
	// runs stays).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				reload(log, p, cfg)
			case <-runCtx.Done():
				return
			}
		}
	}()
	var runErr error
	select {
	case runErr = <-errc:
		cancel()
	case <-ctx.Done():
		runErr = <-errc
	}
	if srv != nil {
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		srv.Shutdown(sctx)
		c()
	}
	if runErr == nil {
		log.Info("pbx stopped")
	}
	return runErr
}

// reload is what SIGHUP does: the dialplan and the TLS certificate are read again.
func reload(log *slog.Logger, p *pbx.PBX, cfg pbx.Config) {
	if cfg.DialplanScript == "" {
		log.Info("SIGHUP: no dialplan to reload")
	} else if err := p.ReloadDialplan(); err == nil {
		log.Info("SIGHUP: dialplan reloaded", "version", p.DialplanVersion())
	}
	if cfg.TLS != "" {
		if err := p.ReloadTLS(); err != nil {
			log.Error("SIGHUP: tls certificate not reloaded; the one in use stays", "error", err)
		}
	}
}

// warnRealmMismatch tells about extensions whose passwords were hashed for another domain: they
// cannot authenticate until their password is set again.
func warnRealmMismatch(ctx context.Context, log *slog.Logger, cfg pbx.Config) {
	s, err := store.Open(ctx, cfg.Database, store.WithoutMigrate())
	if err != nil {
		return
	}
	defer s.Close()
	exts, err := s.Extensions(ctx)
	if err != nil {
		return
	}
	domain := cfg.Domain
	for _, e := range exts {
		if e.Realm != domain {
			log.Warn("extension cannot authenticate: its password was set for another domain; set it again with 'officepbx ext set NUMBER --password PW'",
				"ext", e.Number, "realm", e.Realm, "domain", domain)
		}
	}
}

// dataDirectory is the PBX's folder for files the dialplan writes: the flag's, or officepbx-data
// beside a SQLite database (so recordings follow the data), else in the working directory.
func dataDirectory(flagValue, db string) string {
	switch {
	case flagValue != "":
		return absPath(flagValue)
	case strings.HasPrefix(db, "sqlite:") && !strings.Contains(db, ":memory:"):
		return absPath(filepath.Join(filepath.Dir(strings.TrimPrefix(db, "sqlite:")), "officepbx-data"))
	}
	return absPath("officepbx-data")
}

// absPath makes a folder absolute, so the paths the PBX stores under it (voicemail messages)
// still name the files when read from another working directory (officepbx vm rm); "" stays "".
func absPath(p string) string {
	if p == "" {
		return ""
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

// recordSpool is where call records wait for the database: the flag's file, none for "off", and
// by default a file beside a SQLite database (so records follow the data), or officepbx.records
// in the working directory for other databases.
func recordSpool(flagValue, db string) string {
	switch {
	case flagValue == "off":
		return ""
	case flagValue != "":
		return flagValue
	case strings.HasPrefix(db, "sqlite:") && !strings.Contains(db, ":memory:"):
		return strings.TrimPrefix(db, "sqlite:") + ".records"
	}
	return "officepbx.records"
}
