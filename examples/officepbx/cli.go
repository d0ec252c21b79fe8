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
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

const defaultDB = "sqlite:officepbx.db"

// usageError is a mistake in the command line: exit status 2 and the usage text.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// run is the whole program; main only wires signals and the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	// "officepbx --sip ..." without a subcommand means serve.
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && args[0] != "-h" && args[0] != "--help" {
		args = append([]string{"serve"}, args...)
	}
	err := root.Parse(args)
	if err == nil {
		err = root.Run(ctx)
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)), errors.As(err, new(ffcli.NoExecError)), isFlagError(err):
		fmt.Fprintf(stderr, "officepbx: %v\nRun 'officepbx -h' for usage.\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "officepbx: %v\n", err)
		return 1
	}
}

func isFlagError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "flag provided but not defined") || strings.Contains(s, "invalid value") ||
		strings.Contains(s, "flag needs an argument")
}

func newRoot(stdout, stderr io.Writer) *ffcli.Command {
	root := &ffcli.Command{
		Name:       "officepbx",
		ShortUsage: "officepbx [serve|ext|queue|migrate] [flags]",
		ShortHelp:  "A small office PBX on pbxkit.",
		Subcommands: []*ffcli.Command{
			serveCmd(stderr), extCmd(stdout), queueCmd(stdout), migrateCmd(stdout),
		},
		Exec: func(_ context.Context, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q: want serve, ext, queue or migrate", args[0])
			}
			return flag.ErrHelp
		},
	}
	setOutput(root, stderr)
	return root
}

// setOutput sends every command's usage and flag errors to w.
func setOutput(c *ffcli.Command, w io.Writer) {
	if c.FlagSet == nil {
		c.FlagSet = flag.NewFlagSet(c.Name, flag.ContinueOnError)
	}
	c.FlagSet.SetOutput(w)
	for _, sub := range c.Subcommands {
		setOutput(sub, w)
	}
}

// dbFlags are shared by every command that touches the database.
type dbFlags struct {
	db     string
	domain string
}

func (d *dbFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&d.db, "db", defaultDB, "database: sqlite:PATH or postgres://user@host/db (env PBX_DB)")
	fs.StringVar(&d.domain, "domain", pbx.DefaultDomain, "SIP domain, the digest realm passwords are hashed for (env PBX_DOMAIN)")
}

func (d *dbFlags) open(ctx context.Context) (*store.Store, error) {
	return store.Open(ctx, d.db)
}

func envOptions() []ff.Option { return []ff.Option{ff.WithEnvVarPrefix("PBX")} }

// ---- serve ----

func serveCmd(stderr io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("officepbx serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var d dbFlags
	d.register(fs)
	var (
		sipAddr  = fs.String("sip", pbx.DefaultSIP, "address for SIP over UDP and TCP (env PBX_SIP)")
		httpAddr = fs.String("http", "", "address for /metrics and /healthz, e.g. 127.0.0.1:8080 (env PBX_HTTP)")
		trust    = fs.String("trust", "", "comma-separated networks that need no authentication (env PBX_TRUST)")
		dialplan = fs.String("dialplan", "", "Lua dialplan file (env PBX_DIALPLAN)")
		rtpPorts = fs.String("rtp-ports", "", "RTP port range LO-HI (env PBX_RTP_PORTS)")
		logLevel = fs.String("log-level", "info", "debug, info, warn or error (env PBX_LOG_LEVEL)")
		nodeID   = fs.String("node-id", "", "name of this node among several sharing a database (default: host name)")
		digests  = fs.String("digest-algorithms", "MD5,SHA-256", "digest algorithms offered, in order of preference (env PBX_DIGEST_ALGORITHMS)")
		_        = fs.String("config", "", "config file of 'flag value' lines")
	)
	return &ffcli.Command{
		Name:       "serve",
		ShortUsage: "officepbx serve [--config FILE] [--sip ADDR] [--db DSN] [--http ADDR] [--trust CIDR,...] [--domain NAME]",
		ShortHelp:  "Run the PBX (the default command).",
		FlagSet:    fs,
		Options:    append(envOptions(), ff.WithConfigFileFlag("config"), ff.WithConfigFileParser(ff.PlainParser)),
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
			// Flags of features still to come are refused rather than silently ignored.
			if *dialplan != "" {
				return usagef("--dialplan: Lua dialplans are not available in this version yet")
			}
			if *rtpPorts != "" {
				return usagef("--rtp-ports: the RTP relay is not available in this version yet")
			}
			trusted, err := pbx.ParseTrusted(*trust)
			if err != nil {
				return usagef("--trust: %v", err)
			}
			log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
			var algs []string
			for _, a := range strings.Split(*digests, ",") {
				if a = strings.ToUpper(strings.TrimSpace(a)); a != "" {
					algs = append(algs, a)
				}
			}
			return serve(ctx, log, pbx.Config{
				SIP: *sipAddr, Database: d.db, Domain: d.domain, Trusted: trusted, NodeID: *nodeID,
				DigestAlgorithms: algs,
			}, *httpAddr)
		},
	}
}

func serve(ctx context.Context, log *slog.Logger, cfg pbx.Config, httpAddr string) error {
	p, err := pbx.New(cfg, pbx.WithLogger(log))
	if err != nil {
		return err
	}
	warnRealmMismatch(ctx, log, cfg)
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
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
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
	if domain == "" {
		domain = pbx.DefaultDomain
	}
	for _, e := range exts {
		if e.Realm != domain {
			log.Warn("extension cannot authenticate: its password was set for another domain; set it again with 'officepbx ext set NUMBER --password PW'",
				"ext", e.Number, "realm", e.Realm, "domain", domain)
		}
	}
}

// ---- ext ----

func extCmd(stdout io.Writer) *ffcli.Command {
	return &ffcli.Command{
		Name:        "ext",
		ShortUsage:  "officepbx ext add|list|rm|set ...",
		ShortHelp:   "Manage extensions.",
		Subcommands: []*ffcli.Command{extAddCmd(stdout), extListCmd(stdout), extRmCmd(stdout), extSetCmd(stdout)},
		Exec: func(context.Context, []string) error {
			return usagef("ext needs a subcommand: add, list, rm or set")
		},
	}
}

// interspersed finishes parsing flags that follow positional arguments ("ext add 100 --password
// pw"): the flag package stops at the first positional argument, the command line contract puts
// flags after it. It returns the positional arguments.
func interspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for len(args) > 0 {
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		if strings.HasPrefix(args[0], "-") && len(args[0]) > 1 {
			if err := fs.Parse(args); err != nil {
				return nil, usageError{err.Error()}
			}
			args = fs.Args()
			continue
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	return pos, nil
}

// oneArg parses the flags among args and returns the single positional argument.
func oneArg(fs *flag.FlagSet, args []string, what string) (string, error) {
	args, err := interspersed(fs, args)
	if err != nil {
		return "", err
	}
	if len(args) != 1 {
		return "", usagef("want exactly one %s, got %d arguments", what, len(args))
	}
	return args[0], nil
}

func extAddCmd(stdout io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("officepbx ext add", flag.ContinueOnError)
	var d dbFlags
	d.register(fs)
	password := fs.String("password", "", "SIP password (required)")
	name := fs.String("name", "", "display name")
	return &ffcli.Command{
		Name: "add", ShortUsage: "officepbx ext add NUMBER --password PW [--name NAME] [--db DSN]",
		ShortHelp: "Add an extension.", FlagSet: fs, Options: envOptions(),
		Exec: func(ctx context.Context, args []string) error {
			number, err := oneArg(fs, args, "extension number")
			if err != nil {
				return err
			}
			if *password == "" {
				return usagef("ext add: --password is required")
			}
			e := &store.Extension{Number: number, Name: *name, Enabled: true}
			if err := store.ValidateNumber(number); err != nil {
				return fmt.Errorf("ext add: %w", err)
			}
			if err := e.SetPassword(d.domain, *password); err != nil {
				return fmt.Errorf("ext add: %w", err)
			}
			s, err := d.open(ctx)
			if err != nil {
				return err
			}
			defer s.Close()
			if err := s.CreateExtension(ctx, e); err != nil {
				if errors.Is(err, store.ErrConflict) {
					return fmt.Errorf("ext add: extension %s already exists", number)
				}
				return fmt.Errorf("ext add: %w", err)
			}
			fmt.Fprintf(stdout, "extension %s added\n", number)
			return nil
		},
	}
}

func extListCmd(stdout io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("officepbx ext list", flag.ContinueOnError)
	var d dbFlags
	d.register(fs)
	return &ffcli.Command{
		Name: "list", ShortUsage: "officepbx ext list [--db DSN]", ShortHelp: "List extensions and their registrations.",
		FlagSet: fs, Options: envOptions(),
		Exec: func(ctx context.Context, args []string) error {
			if args, err := interspersed(fs, args); err != nil || len(args) > 0 {
				return usagef("ext list takes no arguments")
			}
			s, err := d.open(ctx)
			if err != nil {
				return err
			}
			defer s.Close()
			exts, err := s.Extensions(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NUMBER\tNAME\tENABLED\tDND\tFORWARD-ALWAYS\tFORWARD-BUSY\tFORWARD-NOANSWER\tCONTACTS")
			for _, e := range exts {
				bs, err := s.Bindings(ctx, e.Number)
				if err != nil {
					return err
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", e.Number, e.Name, onOff(e.Enabled), onOff(e.DND),
					dash(e.ForwardAlways), dash(e.ForwardBusy), dash(e.ForwardNoAnswer), len(bs))
			}
			return tw.Flush()
		},
	}
}

func extRmCmd(stdout io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("officepbx ext rm", flag.ContinueOnError)
	var d dbFlags
	d.register(fs)
	return &ffcli.Command{
		Name: "rm", ShortUsage: "officepbx ext rm NUMBER [--db DSN]", ShortHelp: "Remove an extension with its registrations.",
		FlagSet: fs, Options: envOptions(),
		Exec: func(ctx context.Context, args []string) error {
			number, err := oneArg(fs, args, "extension number")
			if err != nil {
				return err
			}
			s, err := d.open(ctx)
			if err != nil {
				return err
			}
			defer s.Close()
			if err := s.DeleteExtension(ctx, number); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("ext rm: no extension %s", number)
				}
				return err
			}
			fmt.Fprintf(stdout, "extension %s removed\n", number)
			return nil
		},
	}
}

func extSetCmd(stdout io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("officepbx ext set", flag.ContinueOnError)
	var d dbFlags
	d.register(fs)
	var p store.ExtensionPatch
	fs.Func("dnd", "do not disturb: on or off", onOffFlag(&p.DND))
	fs.Func("enabled", "on or off", onOffFlag(&p.Enabled))
	fs.Func("forward-always", "forward every call to T (extension or sip: URI; \"\" clears)", stringFlag(&p.ForwardAlways))
	fs.Func("forward-busy", "forward when busy to T", stringFlag(&p.ForwardBusy))
	fs.Func("forward-noanswer", "forward when not answered to T", stringFlag(&p.ForwardNoAnswer))
	fs.Func("password", "new SIP password (hashed for --domain)", stringFlag(&p.Password))
	fs.Func("name", "display name", stringFlag(&p.Name))
	fs.Func("ring-timeout", "seconds of ringing before no-answer (0: PBX default)", func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("want a number of seconds")
		}
		p.RingTimeout = &n
		return nil
	})
	return &ffcli.Command{
		Name:       "set",
		ShortUsage: "officepbx ext set NUMBER [--dnd on|off] [--forward-always T] [--forward-busy T] [--forward-noanswer T] [--password PW] [--enabled on|off]",
		ShortHelp:  "Change an extension.", FlagSet: fs, Options: envOptions(),
		Exec: func(ctx context.Context, args []string) error {
			number, err := oneArg(fs, args, "extension number")
			if err != nil {
				return err
			}
			if p == (store.ExtensionPatch{}) {
				return usagef("ext set: nothing to change: give at least one flag")
			}
			if p.Password != nil {
				p.Realm = &d.domain
			}
			s, err := d.open(ctx)
			if err != nil {
				return err
			}
			defer s.Close()
			if _, err := s.UpdateExtension(ctx, number, p); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("ext set: no extension %s", number)
				}
				return fmt.Errorf("ext set: %w", err)
			}
			fmt.Fprintf(stdout, "extension %s updated\n", number)
			return nil
		},
	}
}

func onOffFlag(dst **bool) func(string) error {
	return func(s string) error {
		switch strings.ToLower(s) {
		case "on", "true", "yes", "1":
			v := true
			*dst = &v
		case "off", "false", "no", "0":
			v := false
			*dst = &v
		default:
			return fmt.Errorf("want on or off")
		}
		return nil
	}
}

func stringFlag(dst **string) func(string) error {
	return func(s string) error {
		*dst = &s
		return nil
	}
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ---- queue ----

func queueCmd(stdout io.Writer) *ffcli.Command {
	return &ffcli.Command{
		Name: "queue", ShortUsage: "officepbx queue add|list|rm ...", ShortHelp: "Manage call queues.",
		Subcommands: []*ffcli.Command{queueAddCmd(stdout), queueListCmd(stdout), queueRmCmd(stdout)},
		Exec: func(context.Context, []string) error {
			return usagef("queue needs a subcommand: add, list or rm")
		},
	}
}

func queueAddCmd(stdout io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("officepbx queue add", flag.ContinueOnError)
	var d dbFlags
	d.register(fs)
	strategy := fs.String("strategy", store.StrategyRingAll, "how callers are offered to members: "+strings.Join(store.Strategies, ", "))
	members := fs.String("member", "", "comma-separated member extensions, in order of preference")
	maxWait := fs.Int("max-wait", 0, "seconds a caller waits at most (0: no limit)")
	maxLen := fs.Int("max-len", 0, "callers waiting at most (0: no limit)")
	announce := fs.Int("announce", 0, "seconds between position announcements (0: once)")
	music := fs.String("music", "", "hold audio: a WAV file or \"tone\"")
	return &ffcli.Command{
		Name: "add", ShortUsage: "officepbx queue add NAME [--strategy S] [--member EXT,...] [--max-wait SEC]",
		ShortHelp: "Add a call queue.", FlagSet: fs, Options: envOptions(),
		Exec: func(ctx context.Context, args []string) error {
			name, err := oneArg(fs, args, "queue name")
			if err != nil {
				return err
			}
			q := &store.Queue{Name: name, Strategy: *strategy, MaxWait: *maxWait, MaxLen: *maxLen, Announce: *announce, Music: *music}
			for i, m := range strings.Split(*members, ",") {
				if m = strings.TrimSpace(m); m != "" {
					q.Members = append(q.Members, store.QueueMember{Extension: m, Penalty: i})
				}
			}
			s, err := d.open(ctx)
			if err != nil {
				return err
			}
			defer s.Close()
			for _, m := range q.Members {
				if _, err := s.Extension(ctx, m.Extension); errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("queue add: member %s is not an extension", m.Extension)
				}
			}
			if err := s.CreateQueue(ctx, q); err != nil {
				switch {
				case errors.Is(err, store.ErrConflict):
					return fmt.Errorf("queue add: queue %s already exists", name)
				}
				return fmt.Errorf("queue add: %w", err)
			}
			fmt.Fprintf(stdout, "queue %s added with %d members\n", name, len(q.Members))
			return nil
		},
	}
}

func queueListCmd(stdout io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("officepbx queue list", flag.ContinueOnError)
	var d dbFlags
	d.register(fs)
	return &ffcli.Command{
		Name: "list", ShortUsage: "officepbx queue list [--db DSN]", ShortHelp: "List call queues.",
		FlagSet: fs, Options: envOptions(),
		Exec: func(ctx context.Context, args []string) error {
			s, err := d.open(ctx)
			if err != nil {
				return err
			}
			defer s.Close()
			qs, err := s.Queues(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSTRATEGY\tMAX-WAIT\tMAX-LEN\tANNOUNCE\tMUSIC\tMEMBERS")
			for _, q := range qs {
				var ms []string
				for _, m := range q.Members {
					s := m.Extension
					if m.Paused {
						s += "(paused)"
					}
					ms = append(ms, s)
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\n", q.Name, q.Strategy, q.MaxWait, q.MaxLen, q.Announce, dash(q.Music), dash(strings.Join(ms, ",")))
			}
			return tw.Flush()
		},
	}
}

func queueRmCmd(stdout io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("officepbx queue rm", flag.ContinueOnError)
	var d dbFlags
	d.register(fs)
	return &ffcli.Command{
		Name: "rm", ShortUsage: "officepbx queue rm NAME [--db DSN]", ShortHelp: "Remove a call queue.",
		FlagSet: fs, Options: envOptions(),
		Exec: func(ctx context.Context, args []string) error {
			name, err := oneArg(fs, args, "queue name")
			if err != nil {
				return err
			}
			s, err := d.open(ctx)
			if err != nil {
				return err
			}
			defer s.Close()
			if err := s.DeleteQueue(ctx, name); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("queue rm: no queue %s", name)
				}
				return err
			}
			fmt.Fprintf(stdout, "queue %s removed\n", name)
			return nil
		},
	}
}

// ---- migrate ----

func migrateCmd(stdout io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("officepbx migrate", flag.ContinueOnError)
	var d dbFlags
	d.register(fs)
	down := fs.Bool("down", false, "roll the newest migration back instead")
	return &ffcli.Command{
		Name: "migrate", ShortUsage: "officepbx migrate [--db DSN] [--down]",
		ShortHelp: "Bring the database schema up to date (or one step down).", FlagSet: fs, Options: envOptions(),
		Exec: func(ctx context.Context, args []string) error {
			if args, err := interspersed(fs, args); err != nil || len(args) > 0 {
				return usagef("migrate takes no arguments")
			}
			s, err := store.Open(ctx, d.db, store.WithoutMigrate())
			if err != nil {
				return err
			}
			defer s.Close()
			var v int64
			if *down {
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
	}
}
