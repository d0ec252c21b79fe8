package pbx

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/dialplan"
	"github.com/pbxkit/pbxkit/media"
	"github.com/pbxkit/pbxkit/store"
)

// Store is what the PBX needs from persistence: extension look-ups and contact bindings.
// *store.Store implements it.
type Store interface {
	store.Directory
	store.Locations
	PurgeExpired(ctx context.Context) (int64, error)
}

var _ Store = (*store.Store)(nil)

// Option configures New.
type Option func(*PBX)

// WithLogger sets the logger; the default discards everything.
func WithLogger(l *slog.Logger) Option { return func(p *PBX) { p.log = l } }

// WithStore gives the PBX a store to use instead of opening Config.Database. The PBX does not
// close it.
func WithStore(s Store) Option { return func(p *PBX) { p.store = s } }

// WithVoicemail sets the voicemail application behind b2bua.Call.Voicemail: where default
// routing sends the calls an extension with voicemail on does not take, and what the Lua
// dialplan's call:voicemail runs.
func WithVoicemail(app b2bua.VoicemailApp) Option { return func(p *PBX) { p.voicemail = app } }

// WithClock replaces time.Now for nonce ageing and bans, for tests.
func WithClock(now func() time.Time) Option { return func(p *PBX) { p.now = now } }

// PBX is a running SIP PBX: the front door (validation), the registrar and digest authentication,
// on UDP and TCP listeners of its own.
type PBX struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	store    Store
	owned    *store.Store // opened from Config.Database; closed by Shutdown
	ua       *sipgo.UserAgent
	srv      *sipgo.Server
	parser   *sip.Parser
	udp      net.PacketConn
	tcp      *listener // the bound TCP listener, guarded (tcplisten.go)
	tls      *listener // the TLS listener (tls.go); nil without Config.TLS
	cert     *certificate
	conns    *connTable // accepted connections: limits (conns.go) and deadlines (trackedconn.go)
	auth     *authenticator
	reg      *registrar
	calls    *b2bua.Engine
	presence *presence // busy lamps: dialog event subscriptions (presence.go)
	// voicemail is the application behind Call.Voicemail; nil: none (b2bua.ErrNoVoicemail).
	voicemail b2bua.VoicemailApp
	vm        *voicemailApp // the built-in one, when it is voicemail: it also serves *97 and *98
	route     dialplan.Handler
	fallback  dialplan.Default // default routing, last in route
	lua       *dialplan.Lua    // the Lua dialplan, if any
	trunks    *trunkTable      // outbound trunks (trunks.go)
	// trunkClient sends trunk registrations from the UDP listener's socket.
	trunkClient *sipgo.Client
	trunksDone  chan struct{} // closed when the trunk loop has unregistered everything
	trunksRun   atomic.Bool   // the trunk loop was started
	queues      *dialplan.Queues
	relay       *media.Relay // nil without RTPPortMin/Max
	conferences *media.Conferences
	records     *recordQueue // nil when the store keeps no records
	events      *hub
	metrics     *metrics
	// badInput writes the log lines about malformed input, at most a few a second each.
	badInput *logLimiter
	limiter  *sourceLimiter // nil: no per-source limit
	load     *loadGauge     // nil: no load shedding

	branchPrefix  string // marks requests this PBX sends; seeing it come back is a loop
	merged        mergeTracker
	draining      atomic.Bool // set by Shutdown: the read filter drops new datagrams
	serving       serveState  // for Health
	startedAt     time.Time   // when Run began (the node row)
	beating       atomic.Bool // the heartbeat loop was started (cluster.go)
	peers         peerTable   // the nodes as the last heartbeat read them (noderoute.go)
	featureNonces usedNonces  // the signed feature requests of other nodes taken (nodesig.go)
	// peerCalls are the calls other nodes sent here (Call-ID -> true until the call ends): to ring
	// a phone of this node's, or for a pickup or retrieval. Their busy lamps are the sending
	// node's, which shares them (presenceshare.go): shown here too, they would show twice.
	peerCalls sync.Map
	ringing   *ringMirror // this node's ringing calls, shared with the others (ringmirror.go); nil without a shared store

	runOnce      sync.Once
	shutdownOnce sync.Once
	stop         chan struct{} // closed by Shutdown
	wg           sync.WaitGroup
	shutdownErr  error
}

// New validates cfg (an invalid one fails with the errors of Config.Validate), opens the store
// (unless WithStore) and binds the listeners, so the bound addresses can be read before Run.
//
// The first New in a process raises sipgo's process-wide sip.UDPMTUSize to 65535, so that large
// responses (a REGISTER answer listing many contacts, an INVITE with a long SDP) still go back over
// UDP, the way the request came, instead of failing; see docs/architecture.md. sipgo user agents
// of the embedder's own share that setting. Create the first PBX before starting them, or set
// sip.UDPMTUSize = 65535 yourself before either (New then leaves it alone), so that no sipgo
// goroutine reads it while New writes it.
func New(cfg Config, opts ...Option) (*PBX, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("pbx: config: %w", err)
	}
	allowLargeUDP()
	p := &PBX{cfg: cfg, now: time.Now, stop: make(chan struct{})}
	for _, o := range opts {
		o(p)
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if err := p.openStore(); err != nil {
		return nil, err
	}
	var salt [4]byte
	_, _ = rand.Read(salt[:])
	sum := sha256.Sum256(append([]byte(cfg.NodeID), salt[:]...))
	p.branchPrefix = sip.RFC3261BranchMagicCookie + "-pbx" + hex.EncodeToString(sum[:5]) + "-"
	p.metrics = newMetrics()
	p.metrics.nodeInfo(cfg.NodeID, cfg.Version)
	p.badInput = newLogLimiter(p.log, badInputLines, p.now)
	if cfg.SourceRate > 0 {
		p.limiter = newSourceLimiter(cfg.SourceRate, cfg.SourceBurst, p.now)
	}
	if cfg.OverloadLatency > 0 {
		p.load = &loadGauge{limit: cfg.OverloadLatency}
	}
	p.events = newHub()
	p.conferences = media.NewConferences(p.log.With("component", "conference"))
	p.auth = newAuthenticator(cfg, p.store, p.now, p.log.With("component", "auth"), p.metrics, p.cluster())
	p.reg = &registrar{p: p, locks: newKeyedMutex()}
	p.trunks, p.trunksDone = newTrunkTable(p), make(chan struct{})
	p.parser = newParser()
	p.conns = newConnTable(cfg, p.trusted, p.metrics.reg, p.log.With("component", "conns"))
	p.conns.registeredUntil, p.conns.stop = p.registeredUntil, p.stop
	if cs := p.cluster(); cs != nil {
		p.ringing = newRingMirror(cs, cfg.NodeID, p.claimTTL(), p.othersLive, p.log.With("component", "cluster"))
	}
	// Each step opens something; a failing step leaves abandon to close what the earlier ones
	// opened.
	for _, step := range []func() error{p.listen, p.listenTLS, p.newSIPStack, p.newPresence, p.newRelay, p.newVoicemail, p.newCallCore, p.setupDialplan} {
		if err := step(); err != nil {
			p.abandon()
			return nil, err
		}
	}
	for _, m := range knownMethods {
		p.srv.OnRequest(m, p.handle)
	}
	p.srv.OnNoRoute(p.handle)
	return p, nil
}

func (p *PBX) listen() error {
	host, port, _ := net.SplitHostPort(p.cfg.SIP)
	// TCP listens on the same port as UDP, so one address serves both. With port 0 the kernel
	// picks the UDP port, and that number may be taken for TCP: then try another.
	attempts := 1
	if port == "0" {
		attempts = 20
	}
	var err error
	for range attempts {
		var udp net.PacketConn
		udp, err = net.ListenPacket("udp", p.cfg.SIP)
		if err != nil {
			return fmt.Errorf("pbx: listen udp %s: %w", p.cfg.SIP, err)
		}
		p.growReadBuffer(udp)
		tcpAddr := net.JoinHostPort(host, fmt.Sprint(udp.LocalAddr().(*net.UDPAddr).Port))
		var tcp net.Listener
		tcp, err = net.Listen("tcp", tcpAddr)
		if err == nil {
			p.udp, p.tcp = udp, newListener(tcp, p.conns, p.log.With("component", "tcp"))
			return nil
		}
		udp.Close()
		err = fmt.Errorf("pbx: listen tcp %s: %w", tcpAddr, err)
	}
	return err
}

// UDPAddr is the bound UDP address.
func (p *PBX) UDPAddr() *net.UDPAddr { return p.udp.LocalAddr().(*net.UDPAddr) }

// TCPAddr is the bound TCP address.
func (p *PBX) TCPAddr() *net.TCPAddr { return p.tcp.Addr().(*net.TCPAddr) }

// Config returns the configuration in force, defaults filled in.
func (p *PBX) Config() Config { return p.cfg }

// ActiveCalls is the number of calls in progress.
func (p *PBX) ActiveCalls() int { return p.calls.Active() }

// Subscriptions is the number of busy-lamp subscriptions (SUBSCRIBE to the dialog event
// package) in force.
func (p *PBX) Subscriptions() int { return p.presence.count() }

// ActiveDialogs is the number of SIP dialogs the call core tracks (two per answered call).
func (p *PBX) ActiveDialogs() int { return p.calls.Dialogs() }

// Metrics is the PBX's Prometheus registry, for an HTTP /metrics handler.
func (p *PBX) Metrics() *prometheus.Registry { return p.metrics.reg }

// BranchPrefix is the Via branch prefix of requests this PBX sends. A request that arrives with it
// in any Via has looped back (482).
func (p *PBX) BranchPrefix() string { return p.branchPrefix }

// shutdownGrace is how long Shutdown lets requests already read reach their transactions.
const shutdownGrace = 100 * time.Millisecond

// Run serves SIP until ctx ends or Shutdown is called, then shuts down. It returns nil after a
// clean stop. Run may be called once.
func (p *PBX) Run(ctx context.Context) error {
	err := errors.New("pbx: Run called twice")
	p.runOnce.Do(func() {
		err = nil
		p.trunks.load(ctx)
		p.wg.Add(3)
		p.serving.start()
		go func() {
			defer p.wg.Done()
			err := p.srv.ServeUDP(p.udp)
			p.serveEnded("udp", err)
		}()
		go func() {
			defer p.wg.Done()
			// p.tcp retries failed accepts: this returns only once it is closed.
			err := p.srv.ServeTCP(p.tcp)
			p.serveEnded("tcp", err)
		}()
		go func() {
			defer p.wg.Done()
			p.purgeLoop()
		}()
		p.startedAt = p.now()
		if cs := p.cluster(); cs != nil {
			p.beating.Store(true)
			p.joinCluster(cs) // the row is there before the PBX says it listens
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.heartbeatLoop(cs)
			}()
			p.wg.Add(2)
			go func() {
				defer p.wg.Done()
				p.ringing.run(p.stop)
			}()
			go func() {
				defer p.wg.Done()
				p.presence.share.run(p.stop, p.presence)
			}()
		}
		if p.load != nil {
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.load.run(p.stop)
			}()
		}
		p.serveTLS()
		p.trunksRun.Store(true)
		go p.trunkLoop(p.trunksDone)
		p.log.Info("pbx listening", "udp", p.UDPAddr().String(), "tcp", p.TCPAddr().String(), "tls", p.tlsAddrString(),
			"external_ip", p.cfg.ExternalIP, "domain", p.cfg.Domain)
		select {
		case <-ctx.Done():
		case <-p.stop:
		}
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = p.Shutdown(sctx)
	})
	return err
}

// Shutdown stops the listeners and the SIP stack and waits for the PBX's goroutines, at most until
// ctx ends. It is safe to call more than once and from several goroutines.
func (p *PBX) Shutdown(ctx context.Context) error {
	p.shutdownOnce.Do(func() {
		close(p.stop)
		p.serving.shutdown()
		// Drain before closing. sipgo handles each datagram in a goroutine of its own and, if the
		// listener has already left its connection pool, answers a request by dialling a new UDP
		// socket that nothing ever closes. So: stop taking new requests, give the ones already
		// read a moment to get their transactions on the still-open listener, then close.
		p.draining.Store(true)
		// Subscriptions end first, while the watchers' TCP connections are still open for the
		// final NOTIFYs.
		if err := p.presence.close(ctx); err != nil {
			p.log.Warn("subscriptions still ending at shutdown", "error", err)
		}
		p.tcp.Close()
		if p.tls != nil {
			p.tls.Close() // open TLS connections stay, as TCP ones do, for the BYEs
		}
		if err := p.calls.Shutdown(ctx); err != nil {
			p.log.Warn("calls still up at shutdown", "error", err)
		}
		p.conferences.Close()
		p.waitTrunks(ctx) // their REGISTERs with Expires: 0 go out before the SIP stack closes
		select {
		case <-time.After(shutdownGrace):
		case <-ctx.Done():
		}
		p.closeListeners()
		p.ua.Close()
		if err := p.calls.Wait(ctx); err != nil {
			p.log.Warn("call transactions still running at shutdown", "error", err)
		}
		done := make(chan struct{})
		go func() {
			p.wg.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			p.shutdownErr = fmt.Errorf("pbx: shutdown: %w", ctx.Err())
		}
		if p.lua != nil {
			if err := p.lua.Close(ctx); err != nil {
				p.log.Warn("dialplan still running on_hangup at shutdown", "error", err)
			}
		}
		p.closeRecords(ctx) // every call has ended: no record comes after this
		p.leaveCluster(ctx)
		p.closeOwned()
		p.events.close()
	})
	return p.shutdownErr
}

func (p *PBX) closeListeners() {
	if p.udp != nil {
		p.udp.Close()
	}
	if p.tcp != nil {
		p.tcp.Close()
	}
	if p.tls != nil {
		p.tls.Close()
	}
}

func (p *PBX) closeOwned() {
	if p.owned != nil {
		if err := p.owned.Close(); err != nil {
			p.log.Warn("closing store", "error", err)
		}
	}
}

func (p *PBX) purgeLoop() { p.every(p.cfg.PurgeInterval, p.purgeExpired) }

func (p *PBX) purgeExpired() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	n, err := p.store.PurgeExpired(ctx)
	cancel()
	switch {
	case err != nil:
		p.log.Warn("purging expired registrations", "error", err)
	case n > 0:
		p.log.Info("expired registrations purged", "count", n)
	}
}

// every runs fn every d until Shutdown.
func (p *PBX) every(d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		fn()
	}
}

// serveEnded notes the end of a listener's serving loop: expected after Shutdown, a failure
// (logged, and reported by Health) before.
func (p *PBX) serveEnded(transport string, err error) {
	select {
	case <-p.stop:
		return
	default:
	}
	if isClosed(err) {
		err = nil
	}
	p.log.Error(transport+" listener stopped", "error", err)
	p.serving.listenerStopped(transport, err)
}

func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "pbxkit"
	}
	return h
}

// udpMTUSize is what New sets sipgo's sip.UDPMTUSize to: the largest UDP payload, so no message
// is refused for its size.
const udpMTUSize = 65535

// raiseUDPMTU makes New change the sipgo setting once per process, however many PBXs it starts.
var raiseUDPMTU sync.Once

// allowLargeUDP lets sipgo send UDP messages of any size. sipgo refuses one larger than
// sip.UDPMTUSize-200 bytes (1300 by default; its reading of RFC 3261 §18.1.1, which asks a UAC to
// switch such requests to TCP). A PBX cannot switch: responses must return the way the request came
// (§18.2.2), and most phones registered over UDP listen on nothing else. So, like Asterisk and
// FreeSWITCH, pbxkit sends large datagrams and lets IP fragment them. sip.UDPMTUSize is a sipgo
// package variable read by every sipgo transport in the process; it is only ever raised here, never
// lowered, so an embedder that set it higher keeps its value.
func allowLargeUDP() {
	raiseUDPMTU.Do(func() {
		if sip.UDPMTUSize < udpMTUSize {
			sip.UDPMTUSize = udpMTUSize
		}
	})
}
