package b2bua

import (
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Messages of one call are handled in the order they arrived.
//
// sipgo's transaction layer hands every message it reads to a goroutine of its own, so two
// messages read back to back can be handled in either order: a callee's 183 followed at once by
// 486 can reach the INVITE transaction as 486 then 183, and the transaction then drops the 183 as
// a stray; two INFOs (key presses) can be passed on swapped. The engine therefore also listens to
// the transport layer itself (observe): transport handlers run on the goroutine that reads the
// socket or connection, one message after the other, right after the transaction layer has been
// given the message. From there
//   - a response to a B-leg's INVITE goes into that leg's inbox, and the leg reads its responses
//     from the inbox, in arrival order (the transaction's own channel is drained and only used when
//     it is ahead of the inbox, which observe's order rules out for all but the newest response);
//   - an in-dialog request is stamped in its call's arrivals, and its handler waits until the
//     requests that arrived before it have been dispatched (passed on, answered or refused).

// observe is the engine's transport-layer handler; it must not block.
func (e *Engine) observe(msg sip.Message) {
	switch m := msg.(type) {
	case *sip.Response:
		e.observeResponse(m)
	case *sip.Request:
		e.observeRequest(m)
	}
}

func (e *Engine) observeResponse(res *sip.Response) {
	via, cseq := res.Via(), res.CSeq()
	if via == nil || cseq == nil || cseq.MethodName != sip.INVITE {
		return
	}
	branch, _ := via.Params.Get("branch")
	if !strings.HasPrefix(branch, e.cfg.BranchPrefix) {
		return
	}
	if l := e.table.leg(branch); l != nil {
		l.in.push(res)
	}
}

func (e *Engine) observeRequest(req *sip.Request) {
	if req.Method == sip.CANCEL || req.To() == nil || req.From() == nil || req.CallID() == nil {
		return
	}
	toTag, ok := req.To().Params.Get("tag")
	if !ok {
		return
	}
	fromTag, _ := req.From().Params.Get("tag")
	if ref, ok := e.table.lookup(dialogKey(req.CallID().Value(), toTag, fromTag)); ok {
		ref.call.arrivals.stamp(req)
	}
}

// inbox holds a leg's responses in arrival order until its reader takes them.
type inbox struct {
	mu    sync.Mutex
	items []*sip.Response
	ready chan struct{} // a response was pushed (capacity 1)
}

func newInbox() *inbox { return &inbox{ready: make(chan struct{}, 1)} }

func (in *inbox) push(res *sip.Response) {
	in.mu.Lock()
	in.items = append(in.items, res)
	in.mu.Unlock()
	select {
	case in.ready <- struct{}{}:
	default:
	}
}

func (in *inbox) take() []*sip.Response {
	in.mu.Lock()
	defer in.mu.Unlock()
	items := in.items
	in.items = nil
	return items
}

// seenRing remembers the last responses a leg handled, so a response that comes both through the
// inbox and through the transaction is handled once.
type seenRing struct {
	items [8]*sip.Response
	next  int
}

func (s *seenRing) add(res *sip.Response) bool {
	if slices.Contains(s.items[:], res) {
		return false
	}
	s.items[s.next] = res
	s.next = (s.next + 1) % len(s.items)
	return true
}

// arrivalWait bounds how long a request waits for the requests that arrived before it. A request
// stamped on arrival normally reaches its handler within microseconds; one that never does (the
// front door refused it) must not hold the call's later requests for long.
var arrivalWait = 250 * time.Millisecond // a test may set it before its server starts

// arrivals orders one call's in-dialog requests: stamp (on the reading goroutine) queues them as
// they arrive; each handler waits its turn and says when it has dispatched its request.
//
// It lives as long as its call, so it keeps little: hashes of the recent transactions' keys, and
// the handlers that went ahead of their stamp only once there has been one.
type arrivals struct {
	mu      sync.Mutex
	queue   []*sip.Request   // stamped and not yet dispatched, in arrival order
	early   []*sip.Request   // handlers that reached their turn before their stamp (made on first use)
	recent  [recentTx]uint64 // txKey of recent requests: retransmissions are never handled
	nEarly  int
	nRecent int
	changed chan struct{} // closed and replaced whenever the queue shrinks
	closed  bool          // the call ended: nothing waits its turn any more
}

// recentTx is how many of a call's latest transactions arrivals remembers, and earlyTx how many
// handlers that went ahead of their stamp.
const recentTx, earlyTx = 16, 16

func newArrivals() *arrivals { return &arrivals{changed: make(chan struct{})} }

// txSeed keys txKey's hashes for the process.
var txSeed = maphash.MakeSeed()

// txKey names a request's transaction: its branch and method, hashed (64 bits: two transactions
// of one call colliding is not a case to plan for).
func txKey(req *sip.Request, method sip.RequestMethod) uint64 {
	var h maphash.Hash
	h.SetSeed(txSeed)
	branch, _ := req.Via().Params.Get("branch")
	h.WriteString(branch)
	h.WriteByte(' ')
	h.WriteString(string(method))
	return h.Sum64()
}

// stamp queues req unless no handler will see it: a retransmission (sipgo's server transaction
// absorbs it), the ACK of a non-2xx answer (it belongs to its INVITE's transaction), or a request
// whose handler already went ahead before it was stamped.
func (a *arrivals) stamp(req *sip.Request) {
	if req.Via() == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	key := txKey(req, req.Method)
	switch {
	case slices.Contains(a.recent[:], key):
		return
	case req.Method == sip.ACK && slices.Contains(a.recent[:], txKey(req, sip.INVITE)):
		return
	case slices.Contains(a.early, req):
		return
	}
	a.remember(key)
	a.queue = append(a.queue, req)
}

func (a *arrivals) remember(key uint64) {
	a.recent[a.nRecent] = key
	a.nRecent = (a.nRecent + 1) % len(a.recent)
}

// wait returns when every request that arrived before req has been dispatched, or after
// arrivalWait (the late ones are then dropped from the queue).
func (a *arrivals) wait(req *sip.Request) {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	var before []*sip.Request
	if i := slices.Index(a.queue, req); i >= 0 {
		before = slices.Clone(a.queue[:i])
	} else {
		// Not stamped yet: observe runs just after the transaction layer spawned this handler.
		// Everything queued now arrived before req, and everything stamped from now on arrived
		// after it: req takes its place at the end now, and stamp must not queue it again.
		before = slices.Clone(a.queue)
		a.queue = append(a.queue, req)
		if a.early == nil {
			a.early = make([]*sip.Request, earlyTx)
		}
		a.early[a.nEarly] = req
		a.nEarly = (a.nEarly + 1) % len(a.early)
		if req.Via() != nil {
			a.remember(txKey(req, req.Method))
		}
	}
	a.mu.Unlock()
	timer := time.NewTimer(arrivalWait)
	defer timer.Stop()
	for {
		a.mu.Lock()
		pending := slices.ContainsFunc(before, func(r *sip.Request) bool { return slices.Contains(a.queue, r) })
		changed := a.changed
		if !pending {
			a.mu.Unlock()
			return
		}
		a.mu.Unlock()
		select {
		case <-changed:
		case <-timer.C:
			for _, r := range before {
				a.done(r)
			}
			return
		}
	}
}

// done marks req dispatched: the requests that arrived after it may go on.
func (a *arrivals) done(req *sip.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	i := slices.Index(a.queue, req)
	if i < 0 {
		return
	}
	a.queue = slices.Delete(a.queue, i, i+1)
	close(a.changed)
	a.changed = make(chan struct{})
}

// close lets every waiting request go and stops ordering: the call ended, so requests stamped
// for it may never reach a handler that takes their turn (their dialog is gone by the time the
// handler looks), and the ones that do are answered by an ended call, in any order.
func (a *arrivals) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	a.closed = true
	a.queue = nil
	close(a.changed)
	a.changed = make(chan struct{})
}

// turn is one request's place in its call's arrivals; done may be called more than once.
type turn struct {
	a    *arrivals
	req  *sip.Request
	once sync.Once
}

func (t *turn) done() {
	if t == nil {
		return
	}
	t.once.Do(func() { t.a.done(t.req) })
}
