package b2bua

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/internal/pinguard"
	"github.com/pbxkit/pbxkit/internal/sipx"
)

// Defaults of Config.
const (
	DefaultRingTimeout = 30 * time.Second
	DefaultAckTimeout  = 32 * time.Second // 64*T1, RFC 3261 §13.3.1.4
	DefaultUserAgent   = "pbxkit"
)

// Config configures an Engine; zero fields take their defaults.
type Config struct {
	// UDPListener is the local address of the PBX's UDP listener as sipgo knows it (for example
	// "0.0.0.0:5060"). UDP requests are sent from that socket, so they pass the NAT bindings that
	// phones opened toward it by registering (RFC 3581); without it sipgo may send from a socket
	// of its own.
	UDPListener string
	// Host and Port are the PBX's own address, used in the Contact of both legs (UDP and TCP
	// listen on the same port). When Host is empty or unspecified (0.0.0.0), the host the caller
	// addressed (its Request-URI) is used.
	Host string
	Port int
	// TLSPort is the port of the PBX's SIP-over-TLS listener, named in the Contact of dialogs over
	// TLS; 0 when the PBX serves no TLS.
	TLSPort int
	// BranchPrefix starts the Via branch of every request the engine sends, so the PBX's front
	// door recognises its own requests coming back (482).
	BranchPrefix string
	// RingTimeout is how long B-legs ring before the caller gets 480. Default 30 s.
	RingTimeout time.Duration
	// UserAgent goes into the Server header of responses. Default "pbxkit".
	UserAgent string
	// AckTimeout is how long the 2xx to the caller is retransmitted waiting for its ACK before
	// both sides are hung up. Default 64*T1 (32 s, RFC 3261 §13.3.1.4).
	AckTimeout time.Duration
	// PassRedirects passes a callee's 3xx (with its Contacts) on to the caller instead of following
	// it; for trunks and callers that should decide where to go themselves.
	PassRedirects bool
	// CopyHeaders names headers of the caller's INVITE that are copied into the B-legs (for example
	// "P-Asserted-Identity" where the PBX's trunks expect it). Nothing else crosses: topology
	// hiding is the default, and each header that crosses is chosen here.
	CopyHeaders []string
	// Resolve finds the contacts of a destination (Connect, REFER). Without it Connect fails and
	// REFER is answered 501.
	Resolve Resolver
	// ResolveTrunk finds where a number goes out through the named trunk
	// (ConnectOptions.Trunk): the provider's address, with the credentials and caller ID the
	// trunk's legs use (Target.Auth, FromUser, Domain). An unknown trunk is an error wrapping
	// ErrUnknownTrunk. Without it Connect through a trunk fails.
	ResolveTrunk func(ctx context.Context, trunk, number string) ([]Target, error)
	// Media, when set, relays every call's RTP through the PBX and rewrites the session
	// descriptions both ways; nil lets them pass unchanged.
	Media Media
	// Conferences, when set, are the rooms Call.Conference puts callers in (with Media: the PBX
	// answers the caller itself); nil: Conference returns ErrNoConferences.
	Conferences Conferences
	// OnEvent, when set, is told of every call event. It is called on the call's goroutines and
	// must not block.
	OnEvent func(Event)
	// OnUnreachable, when set, is told of a contact that could not be reached over a connection
	// (TCP): the connection failed before the contact answered anything. The PBX removes that
	// registration, so a phone that has gone away is not rung again (RFC 5626's flow failure).
	// It must not block.
	OnUnreachable func(Target, error)
	// Park turns call park on (park.go): a blind transfer to Park.Number parks the transferee.
	Park ParkConfig
	// Cluster, when set, shares park slots with the other nodes of the PBX and finds the parked
	// and ringing calls they hold (cluster.go).
	Cluster Cluster
	// Voicemail, when set, is the application behind Call.Voicemail (voicemail.go).
	Voicemail VoicemailApp
	// RecordingsDir is the folder RecordCall writes recordings into (it must exist). Default: the
	// working directory.
	RecordingsDir string
}

func (c Config) withDefaults() Config {
	if c.BranchPrefix == "" {
		c.BranchPrefix = sip.RFC3261BranchMagicCookie
	}
	if c.RingTimeout == 0 {
		c.RingTimeout = DefaultRingTimeout
	}
	if c.UserAgent == "" {
		c.UserAgent = DefaultUserAgent
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.Park.Timeout == 0 {
		c.Park.Timeout = DefaultParkTimeout
	}
	return c
}

func (c Config) validate() error {
	if c.RingTimeout < 0 || c.AckTimeout < 0 {
		return fmt.Errorf("b2bua: ring timeout (%v) and ACK timeout (%v) must not be negative", c.RingTimeout, c.AckTimeout)
	}
	return nil
}

// contactPort is the PBX's port for transport: TLSPort over TLS, Port otherwise.
func (c Config) contactPort(transport string) int {
	if strings.EqualFold(transport, "tls") && c.TLSPort != 0 {
		return c.TLSPort
	}
	return c.Port
}

// Engine runs calls: it terminates every caller's dialog and re-originates one dialog per callee
// contact, so the two sides never see each other's Call-ID, tags, Via or Contact.
type Engine struct {
	cfg    Config
	client *sipgo.Client // requests over TCP: they reuse the phone's connection
	udp    *sipgo.Client // requests over UDP: sent from the PBX's listening socket
	log    *slog.Logger
	cdr    RecordWriter
	table  *table
	lot    *parkLot        // the parked calls
	pins   *pinguard.Guard // wrong conference PINs per room and source, across calls
	// contacts are the PBX's Contact headers, one per address and transport, shared by the calls.
	contacts contactCache

	mu      sync.Mutex
	closing bool
	calls   map[*Call]struct{}

	quit    chan struct{}  // closed by Shutdown: calls being set up give up
	active  sync.WaitGroup // Handle and transfers in progress: they still send, so they end before the UA closes
	bg      sync.WaitGroup // B-leg readers and CANCEL/BYE senders: they end with their transactions
	sending inflight       // CANCEL/BYE senders until their answer: Shutdown waits for them a while
}

// New returns an engine sending through ua. cdr may be nil. The engine also listens to ua's
// transport layer, to handle each call's messages in the order they arrive.
func New(ua *sipgo.UserAgent, cfg Config, log *slog.Logger, cdr RecordWriter) (*Engine, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientLogger(log))
	if err != nil {
		return nil, fmt.Errorf("b2bua: %w", err)
	}
	udp := client
	if cfg.UDPListener != "" {
		if udp, err = sipgo.NewClient(ua, sipgo.WithClientLogger(log), sipgo.WithClientConnectionAddr(cfg.UDPListener)); err != nil {
			return nil, fmt.Errorf("b2bua: udp listener %q: %w", cfg.UDPListener, err)
		}
	}
	e := &Engine{cfg: cfg, client: client, udp: udp, log: log, cdr: cdr, table: newTable(), lot: &parkLot{calls: map[string]*Call{}},
		pins:  pinguard.New(0, 0, nil),
		calls: map[*Call]struct{}{}, quit: make(chan struct{})}
	ua.TransportLayer().OnMessage(e.observe)
	return e, nil
}

// recoverPanic keeps a bug reached by some remote's message in a background goroutine from
// ending the process: it logs the panic with its stack instead.
func (e *Engine) recoverPanic(where string) {
	if r := recover(); r != nil {
		e.log.Error("panic in "+where, "panic", r, "stack", string(debug.Stack()))
	}
}

// sendAsync sends a request that needs no one to wait for its answer (CANCEL, BYE) and lets its
// transaction run out in the background.
func (e *Engine) sendAsync(req *sip.Request, log *slog.Logger, what string) {
	e.bg.Add(1)
	e.sending.add()
	go func() {
		defer e.bg.Done()
		defer e.sending.done()
		defer e.recoverPanic(what)
		ctx, cancel := context.WithTimeout(context.Background(), 64*sip.T1)
		defer cancel()
		if _, err := e.clientFor(req).Do(ctx, req); err != nil {
			log.Debug(what, "error", err)
		}
	}()
}

// clientFor picks the client that sends req by its transport.
func (e *Engine) clientFor(req *sip.Request) *sipgo.Client {
	if strings.EqualFold(req.Transport(), "udp") {
		return e.udp
	}
	return e.client
}

// Active returns the number of calls in progress.
func (e *Engine) Active() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.calls)
}

// Dialogs returns the number of dialogs the engine tracks (two per answered call).
func (e *Engine) Dialogs() int { return e.table.size() }

// liveCalls returns the calls in progress.
func (e *Engine) liveCalls() []*Call {
	e.mu.Lock()
	defer e.mu.Unlock()
	calls := make([]*Call, 0, len(e.calls))
	for c := range e.calls {
		calls = append(calls, c)
	}
	return calls
}

// InCall reports whether the extension ext is in an answered call, as the caller or as the
// callee that answered.
func (e *Engine) InCall(ext string) bool {
	for _, c := range e.liveCalls() {
		if c.talking(ext) {
			return true
		}
	}
	return false
}

// admit files a new call, unless the engine is shutting down.
func (e *Engine) admit(c *Call) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return false
	}
	e.calls[c] = struct{}{}
	e.active.Add(1)
	return true
}

// release forgets a call that ended, with its dialogs.
func (e *Engine) release(c *Call) {
	e.table.removeCall(c, time.Now())
	c.arrivals.close()
	e.mu.Lock()
	delete(e.calls, c)
	e.mu.Unlock()
}

// HandleInDialog takes a request inside a dialog of one of the engine's calls (ACK, BYE and the
// requests passed through to the other side), in the order the call's requests arrived. A BYE for
// a dialog that ended a moment ago (it crossed the PBX's own BYE, or a transfer released its
// sender) is answered 200. It reports false when the request belongs to no dialog of the engine,
// for the caller to answer 481.
func (e *Engine) HandleInDialog(req *sip.Request, tx sip.ServerTransaction) bool {
	toTag, _ := req.To().Params.Get("tag")
	fromTag, _ := req.From().Params.Get("tag")
	key := dialogKey(req.CallID().Value(), toTag, fromTag)
	ref, ok := e.table.lookup(key)
	if !ok {
		if req.Method == sip.BYE && e.table.ended(key, time.Now()) {
			e.respond(req, tx, 200, "", nil)
			return true
		}
		return false
	}
	c := ref.call
	c.arrivals.wait(req)
	t := &turn{a: c.arrivals, req: req}
	defer t.done()
	c.inDialog(req, tx, ref.aleg, t)
	return true
}

// Shutdown hangs up every answered call (BYE to both sides), makes calls still ringing give up
// (503 to the caller, CANCEL to the callee) and waits until no call is left, at most until ctx
// ends. It also waits, up to ByeWait, for the answers to its BYEs and CANCELs, so that the phones
// know their calls ended before the PBX stops listening. New calls are refused with 503 from then
// on. The transactions it started end when the SIP stack closes; Wait waits for their goroutines.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	if !e.closing {
		e.closing = true
		close(e.quit)
	}
	e.mu.Unlock()
	for _, c := range e.liveCalls() {
		c.Hangup("pbx shutdown")
	}
	err := waitGroup(ctx, &e.active, "b2bua: shutdown")
	answers, cancel := context.WithTimeout(ctx, ByeWait)
	defer cancel()
	select {
	case <-e.sending.idle():
	case <-answers.Done():
		e.log.Info("shutdown did not hear every BYE answered", "error", answers.Err())
	}
	return err
}

// inflight counts requests waiting for their answers. Unlike a WaitGroup it may be waited on
// while requests are still being added (a late 2xx's BYE during shutdown).
type inflight struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // closed when n drops to 0
}

func (f *inflight) add() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 {
		f.zero = make(chan struct{})
	}
	f.n++
}

func (f *inflight) done() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n--
	if f.n == 0 {
		close(f.zero)
	}
}

// idle returns a channel closed once no request is waiting.
func (f *inflight) idle() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	return f.zero
}

// ByeWait bounds how long Shutdown waits for the answers to its BYEs and CANCELs.
const ByeWait = 2 * time.Second

// Wait waits for the goroutines of the engine's transactions (B-leg readers, CANCEL and BYE
// senders), at most until ctx ends. Call it after closing the SIP stack, which ends them.
func (e *Engine) Wait(ctx context.Context) error {
	return waitGroup(ctx, &e.bg, "b2bua: wait")
}

func waitGroup(ctx context.Context, wg *sync.WaitGroup, what string) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
}

// respond answers a request the engine handles, with the IANA phrase.
func (e *Engine) respond(req *sip.Request, tx sip.ServerTransaction, code int, toTag string, body []byte, hdrs ...sip.Header) (*sip.Response, error) {
	return e.respondPhrase(req, tx, code, sipx.Reason(code), toTag, body, hdrs...)
}

// respondPhrase is respond with the reason phrase given.
func (e *Engine) respondPhrase(req *sip.Request, tx sip.ServerTransaction, code int, phrase, toTag string, body []byte, hdrs ...sip.Header) (*sip.Response, error) {
	if tx == nil {
		return nil, errTxReleased
	}
	res := sip.NewResponseFromRequest(req, code, phrase, body)
	res.SipVersion = "SIP/2.0"
	if toTag != "" && code != 100 {
		res.To().Params.Add("tag", toTag) // sipgo made one up; the dialog's is ours
	}
	res.AppendHeader(sip.NewHeader("Server", e.cfg.UserAgent))
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if len(body) > 0 {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	return res, tx.Respond(res)
}
