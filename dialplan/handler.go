package dialplan

import (
	"context"
	"time"

	"github.com/pbxkit/pbxkit/b2bua"
)

// Handler decides what becomes of a new call, using the verbs of *b2bua.Call (Connect, Forward,
// Reject, Redirect, Ringing, Progress) and Queues.Wait. It is called once per new INVITE that
// passed authentication, on the INVITE's own goroutine, and may block while callees ring. ctx
// ends when the caller cancels, the call ends or the PBX shuts down.
//
// A handler that returns without answering or refusing the caller leaves the answer to the PBX:
// the status of its last failed Connect, or 500 when it returned an error or decided nothing.
type Handler interface {
	Handle(ctx context.Context, c *b2bua.Call) error
}

// HandlerFunc lets an ordinary function be a Handler.
type HandlerFunc func(ctx context.Context, c *b2bua.Call) error

// Handle calls f(ctx, c).
func (f HandlerFunc) Handle(ctx context.Context, c *b2bua.Call) error { return f(ctx, c) }

var _ Handler = HandlerFunc(nil)

// Chain runs handlers in order, each one only while the call is still undecided: the first that
// answers, refuses or redirects the caller ends the chain, as does the first error. A Go
// pre-check (a blacklist, a time-of-day rule) can so run before a Lua dialplan.
func Chain(handlers ...Handler) Handler {
	return HandlerFunc(func(ctx context.Context, c *b2bua.Call) error {
		for _, h := range handlers {
			if c.Decided() || ctx.Err() != nil {
				return nil
			}
			if err := h.Handle(ctx, c); err != nil {
				return err
			}
		}
		return nil
	})
}

// Extension is what a dialplan sees of an extension.
type Extension struct {
	Number          string
	Name            string
	Enabled         bool
	DND             bool   // do not disturb
	ForwardAlways   string // "" or the destination every call is forwarded to
	ForwardBusy     string // "" or the destination when the extension is busy
	ForwardNoAnswer string // "" or the destination when it does not answer
	RingTimeout     int    // seconds; 0 means the PBX default
	Registered      bool   // has at least one live registration
	PickupGroup     string // "" or the pickup group whose ringing calls it may answer (*8)
	// Voicemail: the extension's mailbox is on; default routing sends the calls it does not
	// take there.
	Voicemail bool
	Record    bool // default routing records the calls to or from it (Call.RecordCall)
}

// Queue is what a dialplan sees of a call queue.
type Queue struct {
	Name     string
	Strategy string        // one of the Strategy... constants; "" is StrategyRingAll
	Members  []Agent       // the extensions that take the queue's calls, in the queue's order
	MaxWait  time.Duration // 0 for no limit
	MaxLen   int           // callers waiting at most; 0 for no limit
	Announce time.Duration // how often a waiting caller hears its position again (182); 0 once
	Music    string        // hold audio: a WAV file or "tone"
	// WrapUp is how long an agent is left alone after a call from a queue ended.
	WrapUp time.Duration
	// RingTimeout is how long members ring per attempt; 0 for QueueOptions' default.
	RingTimeout time.Duration
}

// Agent is a queue member and its state. Paused and logged-out agents are never offered a call.
type Agent struct {
	Extension   string
	Penalty     int // tier: the lowest tier with an agent free is offered first
	Paused      bool
	PauseReason string
	LoggedOut   bool
}

// Directory is where a dialplan looks extensions and queues up. Both methods return nil and no
// error for a name that does not exist. Extension may also be given a sip: URI: one that names
// an extension of the PBX (its user part at the PBX's domain or address) returns that extension,
// any other nil, so that default routing treats a forward to "sip:102@pbx.example.com" as one to
// 102.
type Directory interface {
	Extension(ctx context.Context, number string) (*Extension, error)
	Queue(ctx context.Context, name string) (*Queue, error)
}

// TrunkDirectory is a Directory that also knows outbound trunks: default routing sends a number
// that is no extension out through the trunk it names (pbx's Directory is one).
type TrunkDirectory interface {
	Directory
	// OutboundTrunk returns the trunk that takes c's call to number, a number that is no
	// extension, and what to dial there (the trunk's prefix stripped); trunk is "" when no trunk
	// takes it (among others, for a call that came in from a trunk).
	OutboundTrunk(ctx context.Context, c *b2bua.Call, number string) (trunk, dial string, err error)
}
