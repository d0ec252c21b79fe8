package b2buatest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"go.uber.org/goleak"

	"github.com/pbxkit/pbxkit/b2bua"
)

// BranchPrefix starts the Via branch of every request a test Server's engine sends.
const BranchPrefix = sip.RFC3261BranchMagicCookie + "-b2buatest-"

// Server is an Engine serving SIP on 127.0.0.1 (UDP and TCP on one port), as the PBX serves it
// but without registrar, authentication or store: every INVITE is a call routed by the test's
// route function; extensions are phones the test registers with Register.
type Server struct {
	Engine *b2bua.Engine
	Logs   *LogBuffer

	t     testing.TB
	route b2bua.RouteFunc
	udp   net.PacketConn
	tcp   net.Listener

	ua *sipgo.UserAgent

	mu       sync.Mutex
	contacts map[string][]b2bua.Target
	records  []b2bua.Record
	events   []b2bua.Event
	changed  chan struct{} // closed and replaced when a record or event arrives
}

// DialCallee is the route most tests use: connect the caller to the extension it dialled.
func DialCallee(ctx context.Context, c *b2bua.Call) error {
	_, err := c.Connect(ctx, []string{c.Callee()}, b2bua.ConnectOptions{})
	return err
}

// NewServer starts a server whose calls are routed by route (DialCallee when nil). cfg's address
// fields are filled in; Resolve defaults to the server's registered phones. The server stops
// when the test ends, and the test fails if any goroutine of the server is left then.
func NewServer(t testing.TB, cfg b2bua.Config, route b2bua.RouteFunc) *Server {
	t.Helper()
	baseline := goleak.IgnoreCurrent()
	if route == nil {
		route = DialCallee
	}
	s := &Server{t: t, route: route, Logs: &LogBuffer{}, contacts: map[string][]b2bua.Target{}, changed: make(chan struct{})}
	s.listen()
	log := slog.New(slog.NewTextHandler(s.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var engine *b2bua.Engine
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(log)),
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerLogger(log),
			sip.WithTransactionLayerTerminateOnConnClose(), // as the PBX runs it
			sip.WithTransactionLayerUnhandledResponseHandler(func(res *sip.Response) { engine.HandleStrayResponse(res) }),
		))
	if err != nil {
		t.Fatal(err)
	}
	s.ua = ua
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	s.configure(&cfg)
	if engine, err = b2bua.New(ua, cfg, log, s); err != nil {
		t.Fatal(err)
	}
	s.Engine = engine
	for _, m := range []sip.RequestMethod{sip.INVITE, sip.ACK, sip.CANCEL, sip.BYE, sip.OPTIONS, sip.INFO,
		sip.UPDATE, sip.REFER, sip.NOTIFY, sip.MESSAGE} {
		srv.OnRequest(m, s.handle)
	}
	s.serve(t, srv, ua, baseline)
	return s
}

// listen binds UDP and TCP on one free port of 127.0.0.1.
func (s *Server) listen() {
	for range 20 {
		udp, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			s.t.Fatal(err)
		}
		tcp, err := net.Listen("tcp", udp.LocalAddr().String())
		if err == nil {
			s.udp, s.tcp = udp, tcp
			return
		}
		udp.Close()
	}
	s.t.Fatal("no port free for both UDP and TCP")
}

func (s *Server) configure(cfg *b2bua.Config) {
	cfg.UDPListener = s.udp.LocalAddr().String()
	cfg.Host, cfg.Port = "127.0.0.1", s.Addr().Port
	if cfg.BranchPrefix == "" {
		cfg.BranchPrefix = BranchPrefix
	}
	if cfg.Resolve == nil {
		cfg.Resolve = s.resolve
	}
	next := cfg.OnEvent
	cfg.OnEvent = func(ev b2bua.Event) {
		s.mu.Lock()
		s.events = append(s.events, ev)
		s.notify()
		s.mu.Unlock()
		if next != nil {
			next(ev)
		}
	}
}

// serve runs the listeners and stops everything when the test ends, as the PBX shuts down.
func (s *Server) serve(t testing.TB, srv *sipgo.Server, ua *sipgo.UserAgent, baseline goleak.Option) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); srv.ServeUDP(s.udp) }()
	go func() { defer wg.Done(); srv.ServeTCP(s.tcp) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Engine.Shutdown(ctx); err != nil {
			t.Errorf("engine shutdown: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // requests already read reach their transactions
		s.udp.Close()
		s.tcp.Close()
		ua.Close()
		if err := s.Engine.Wait(ctx); err != nil {
			t.Errorf("engine wait: %v", err)
		}
		wg.Wait()
		if err := goleak.Find(baseline); err != nil {
			t.Errorf("goroutines left after the server stopped: %v", err)
		}
		if t.Failed() && testing.Verbose() {
			t.Logf("server log:\n%s", s.Logs.String())
		}
	})
}

// handle routes every request: in-dialog ones to the engine (481 when it has no such dialog),
// INVITEs to a new call, the rest 481 (OPTIONS 200).
func (s *Server) handle(req *sip.Request, tx sip.ServerTransaction) {
	if _, inDialog := req.To().Params.Get("tag"); inDialog {
		if !s.Engine.HandleInDialog(req, tx) && !req.IsAck() {
			s.reply(req, tx, 481)
		}
		return
	}
	switch req.Method {
	case sip.INVITE:
		s.Engine.Handle(req, tx, req.From().Address.User, s.route)
	case sip.ACK:
	case sip.OPTIONS:
		s.reply(req, tx, 200)
	default:
		s.reply(req, tx, 481)
	}
}

func (s *Server) reply(req *sip.Request, tx sip.ServerTransaction, code int) {
	if err := tx.Respond(sip.NewResponseFromRequest(req, code, fmt.Sprint(code), nil)); err != nil {
		s.t.Logf("reply %d: %v", code, err)
	}
}

// Addr is the server's address; UDP and TCP listen on it.
func (s *Server) Addr() *net.UDPAddr { return s.udp.LocalAddr().(*net.UDPAddr) }

// Phone returns a new UDP phone of the server.
func (s *Server) Phone(t testing.TB) *Phone { return NewPhone(t, s.Addr()) }

// TCPPhone returns a new phone connected to the server over TCP.
func (s *Server) TCPPhone(t testing.TB) *Phone { return NewTCPPhone(t, s.Addr().String()) }

// Register makes p a contact of extension ext: calls to ext ring it (with every other phone
// registered as ext).
func (s *Server) Register(ext string, p *Phone) {
	var uri sip.Uri
	if err := sip.ParseUri(p.Contact(ext), &uri); err != nil {
		s.t.Fatal(err)
	}
	if p.Transport() != "udp" {
		s.waitAccepted(p)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.contacts[ext] = append(s.contacts[ext], b2bua.Target{URI: uri, Dest: p.Addr(), Transport: p.Transport(), Ext: ext})
}

// Unregister removes every contact of ext.
func (s *Server) Unregister(ext string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.contacts, ext)
}

// resolve is the server's Resolver: a URI without host is an extension (404 when unknown, 480
// without a phone); any other is called directly.
func (s *Server) resolve(_ context.Context, uri sip.Uri) ([]b2bua.Target, error) {
	if uri.Host != "" && uri.Host != "pbx.test" {
		transport := "udp"
		if t, ok := uri.UriParams.Get("transport"); ok {
			transport = strings.ToLower(t)
		}
		return []b2bua.Target{{URI: uri, Transport: transport}}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ts, ok := s.contacts[uri.User]
	switch {
	case !ok && uri.User == "":
		return nil, &b2bua.StatusError{Code: 404, Reason: "no extension"}
	case !ok:
		return nil, &b2bua.StatusError{Code: 404, Reason: "no such extension"}
	}
	return append([]b2bua.Target(nil), ts...), nil
}

// WriteRecord keeps the engine's records for the test.
func (s *Server) WriteRecord(_ context.Context, r b2bua.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = append(s.records, r)
	s.notify()
	return nil
}

// notify wakes whoever waits for a record or event. The caller holds s.mu.
func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Record waits for the record of the call with Call-ID callID, or fails the test.
func (s *Server) Record(callID string) b2bua.Record {
	s.t.Helper()
	var rec b2bua.Record
	s.waitFor(fmt.Sprintf("the record of %s", callID), func() bool {
		for _, r := range s.records {
			if r.CallID == callID {
				rec = r
				return true
			}
		}
		return false
	})
	return rec
}

// Records returns the records written so far.
func (s *Server) Records() []b2bua.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]b2bua.Record(nil), s.records...)
}

// Events returns the call events so far.
func (s *Server) Events() []b2bua.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]b2bua.Event(nil), s.events...)
}

// WaitEvent waits for an event of kind for the call callID, or fails the test.
func (s *Server) WaitEvent(callID string, kind b2bua.EventKind) b2bua.Event {
	s.t.Helper()
	var ev b2bua.Event
	s.waitFor(fmt.Sprintf("%s of %s", kind, callID), func() bool {
		for _, e := range s.events {
			if e.CallID == callID && e.Kind == kind {
				ev = e
				return true
			}
		}
		return false
	})
	return ev
}

// waitFor waits until cond (called under s.mu) holds, or fails the test after Wait.
func (s *Server) waitFor(what string, cond func() bool) {
	s.t.Helper()
	deadline := time.After(Wait)
	for {
		s.mu.Lock()
		ok, changed := cond(), s.changed
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			s.t.Fatalf("no %s within %v", what, Wait)
		}
	}
}

// WaitIdle waits until the engine has no call and no dialog left, or fails the test.
func (s *Server) WaitIdle() {
	s.t.Helper()
	deadline := time.Now().Add(Wait)
	for s.Engine.Active() != 0 || s.Engine.Dialogs() != 0 {
		if time.Now().After(deadline) {
			s.t.Fatalf("call state left behind: %d calls, %d dialogs", s.Engine.Active(), s.Engine.Dialogs())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// LogBuffer collects log lines for assertions; it is safe for concurrent use.
type LogBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var _ b2bua.RecordWriter = (*Server)(nil)

// RegisterTarget adds a contact of t.Ext as it is, for contacts no Phone stands behind.
func (s *Server) RegisterTarget(t b2bua.Target) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.contacts[t.Ext] = append(s.contacts[t.Ext], t)
}

// waitAccepted waits until the server has taken a TCP or TLS phone's connection into its pool,
// as the phone's first REGISTER would have made sure: a call to a phone whose connection the
// server has not accepted yet would be sent on a new connection, which the phone does not take.
func (s *Server) waitAccepted(p *Phone) {
	pool := s.ua.TransportLayer().Pool(p.Transport())
	if pool == nil {
		return
	}
	for deadline := time.Now().Add(Wait); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if c := pool.Get(p.Addr()); c != nil {
			c.Ref(-1) // Get took a reference
			return
		}
	}
	s.t.Fatalf("the server never accepted the %s connection from %s", p.Transport(), p.Addr())
}
