package admin

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// Defaults of Config.
const (
	DefaultMaxBody   = 64 << 10 // bytes of a request body
	DefaultHeartbeat = 15 * time.Second
)

// Store is what the admin API needs of the PBX's store; *store.Store implements it.
type Store interface {
	Extensions(ctx context.Context) ([]store.Extension, error)
	Extension(ctx context.Context, number string) (*store.Extension, error)
	CreateExtension(ctx context.Context, e *store.Extension) error
	UpdateExtension(ctx context.Context, number string, p store.ExtensionPatch) (*store.Extension, error)
	DeleteExtension(ctx context.Context, number string) error
	LiveBindings(ctx context.Context) ([]store.Binding, error)
	CDRs(ctx context.Context, f store.CDRFilter) ([]store.CDR, error)
	Queues(ctx context.Context) ([]store.Queue, error)
	Bans(ctx context.Context) ([]store.Ban, error)
	LiftBan(ctx context.Context, ip string) error
	VoicemailMessages(ctx context.Context, mailbox, folder string) ([]store.VoicemailMessage, error)
	Voicemail(ctx context.Context, mailbox string, id int64) (*store.VoicemailMessage, error)
	SetVoicemailFolder(ctx context.Context, mailbox string, id int64, folder string) error
	DeleteVoicemail(ctx context.Context, mailbox string, id int64) (*store.VoicemailMessage, error)
	TokenStore
}

var _ Store = (*store.Store)(nil)

// Config configures a Server.
type Config struct {
	// PBX is the PBX served. Required.
	PBX *pbx.PBX
	// Store is where extensions, registrations, records, queues, bans and voicemail are read and
	// changed. Default: the PBX's own store (PBX.Store), which must then implement Store.
	Store Store
	// Token is the API token. Empty: the one stored in the database, or a new one generated and
	// stored (its hash) on the first start, which NewToken returns so it can be shown once.
	Token string
	// Logger gets the API's log lines. Default: discard.
	Logger *slog.Logger
	// MaxBody bounds request bodies; larger ones get 413. Default DefaultMaxBody.
	MaxBody int64
	// Heartbeat is how often an idle event stream gets a comment line, so proxies keep it open.
	// Default DefaultHeartbeat.
	Heartbeat time.Duration
}

// Server serves the admin API and the console for one PBX.
type Server struct {
	cfg      Config
	pbx      *pbx.PBX
	store    Store
	log      *slog.Logger
	hash     []byte // SHA-256 of the token
	newToken string // generated at this start, shown once
	api      *http.ServeMux

	closeOnce sync.Once
	done      chan struct{} // closed by Close: event streams end
}

// New makes a Server, settling the token (see Config.Token).
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.PBX == nil {
		return nil, errors.New("admin: no PBX")
	}
	if cfg.Store == nil {
		st, ok := cfg.PBX.Store().(Store)
		if !ok {
			return nil, errors.New("admin: the PBX's store does not keep what the admin API needs; set Config.Store")
		}
		cfg.Store = st
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	s := &Server{cfg: cfg, pbx: cfg.PBX, store: cfg.Store, log: cfg.Logger, done: make(chan struct{})}
	hash, generated, err := settleToken(ctx, cfg.Store, cfg.Token)
	if err != nil {
		return nil, err
	}
	s.hash, s.newToken = hash, generated
	s.api = s.routes()
	return s, nil
}

// NewToken returns the token generated at this start (the database had none and Config gave
// none), for the caller to show once; "" otherwise.
func (s *Server) NewToken() string { return s.newToken }

// Register adds the API (/api/) and the console (/) to mux.
func (s *Server) Register(mux *http.ServeMux) {
	mux.Handle("/api/", s.authorized(s.api))
	mux.Handle("/", consoleHandler()) // not "GET /": it would conflict with "/api/"
}

// Close ends the event streams being served; new ones end at once. Safe to call more than once.
func (s *Server) Close() { s.closeOnce.Do(func() { close(s.done) }) }

// endpoint is one route of the API.
type endpoint struct {
	method, path string
	handler      http.HandlerFunc
}

// endpoints lists the API's routes (the OpenAPI description must name each; a test checks).
func (s *Server) endpoints() []endpoint {
	return []endpoint{
		{"GET", "/api/extensions", s.listExtensions},
		{"POST", "/api/extensions", s.createExtension},
		{"GET", "/api/extensions/{number}", s.getExtension},
		{"PATCH", "/api/extensions/{number}", s.patchExtension},
		{"DELETE", "/api/extensions/{number}", s.deleteExtension},
		{"GET", "/api/registrations", s.listRegistrations},
		{"GET", "/api/calls", s.listCalls},
		{"DELETE", "/api/calls/{id}", s.hangupCall},
		{"POST", "/api/calls/{id}/recording", s.startRecording},
		{"DELETE", "/api/calls/{id}/recording", s.stopRecording},
		{"GET", "/api/cdrs", s.listCDRs},
		{"GET", "/api/queues", s.listQueues},
		{"POST", "/api/queues/{name}/agents/{ext}/pause", s.pauseAgent(true)},
		{"POST", "/api/queues/{name}/agents/{ext}/unpause", s.pauseAgent(false)},
		{"GET", "/api/conferences", s.listConferences},
		{"POST", "/api/conferences/{room}/participants/{id}/mute", s.muteParticipant(true)},
		{"POST", "/api/conferences/{room}/participants/{id}/unmute", s.muteParticipant(false)},
		{"DELETE", "/api/conferences/{room}/participants/{id}", s.kickParticipant},
		{"GET", "/api/bans", s.listBans},
		{"DELETE", "/api/bans/{ip}", s.liftBan},
		{"GET", "/api/voicemail", s.listVoicemail},
		{"GET", "/api/voicemail/{mailbox}/{id}/audio", s.voicemailAudio},
		{"PATCH", "/api/voicemail/{mailbox}/{id}", s.patchVoicemail},
		{"DELETE", "/api/voicemail/{mailbox}/{id}", s.deleteVoicemail},
		{"POST", "/api/dialplan/reload", s.reloadDialplan},
		{"GET", "/api/events", s.events},
		{"GET", "/api/openapi.json", serveOpenAPI},
	}
}

// routes is the API's mux, behind the token check.
func (s *Server) routes() *http.ServeMux {
	m := http.NewServeMux()
	for _, e := range s.endpoints() {
		m.HandleFunc(e.method+" "+e.path, e.handler)
	}
	m.HandleFunc("/api/", s.noRoute(m))
	return m
}
