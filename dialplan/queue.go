package dialplan

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/pbxkit/pbxkit/b2bua"
)

// Queues keeps the callers waiting in each call queue, in order of arrival, with what the queues
// remember between calls: each queue's figures, its agents' calls (for the strategies) and their
// wrap-up. One Queues serves every call of a PBX; its zero value is not usable, NewQueues makes
// one.
type Queues struct {
	dir  Directory // where queues are looked up again at each attempt; nil: never
	now  func() time.Time
	intN func(n int) int

	mu      sync.Mutex
	queues  map[string]*queueState
	lastEnd map[string]time.Time // by extension: the end of its last queue call (wrap-up)
	offered map[string]int       // by extension: attempts ringing it now, in any queue

	onChange func(QueueChange) // queueevents.go
	claims   AgentClaimer      // nil: this PBX is alone (claims.go)
	shared   WaitingList       // nil: this PBX is alone (waiting.go)
}

// NewQueues returns an empty set of queues. With a Directory, Wait looks the queue up again
// before each attempt, so that agents paused, logged out or added while callers wait count at
// once; dir may be nil.
func NewQueues(dir Directory) *Queues {
	return &Queues{dir: dir, now: time.Now, intN: rand.IntN, queues: map[string]*queueState{},
		lastEnd: map[string]time.Time{}, offered: map[string]int{}}
}

// QueueOptions say how long a caller waits and how it is kept informed. Zero fields take the
// queue's settings, then the defaults.
type QueueOptions struct {
	// Timeout is the longest the caller waits; then Wait returns status 408. Default: the
	// queue's MaxWait, or no limit.
	Timeout time.Duration
	// Announce is how often the caller hears its position again (182). Default: the queue's
	// Announce, or only on arrival and when it moves up.
	Announce time.Duration
	// RingTimeout is how long agents ring at each attempt. Default: the queue's, else 15 s.
	RingTimeout time.Duration
	// Retry is the pause before the next attempt when no agent was free, or when every free
	// agent was offered the call once without answering. Default 1 s.
	Retry time.Duration
	// Music is what the caller hears while waiting, with the media relay on: "tone" (ringback) or
	// a WAV file. Default: the queue's Music; "" and no relay: the caller's own ringback.
	Music string
	// Announcement, a WAV file, is played to the waiting caller every Announce in place of the
	// music (over ringback when no Music is given), with the media relay on.
	Announcement string
}

// DefaultQueueRingTimeout is how long agents ring per attempt when neither the queue nor the
// options say.
const DefaultQueueRingTimeout = 15 * time.Second

func (o QueueOptions) withDefaults(q *Queue) QueueOptions {
	o.Timeout = cmp.Or(o.Timeout, q.MaxWait)
	o.Announce = cmp.Or(o.Announce, q.Announce)
	if o.RingTimeout <= 0 {
		o.RingTimeout = cmp.Or(q.RingTimeout, DefaultQueueRingTimeout)
	}
	if o.Retry <= 0 {
		o.Retry = time.Second
	}
	o.Music = cmp.Or(o.Music, q.Music)
	return o
}

// Wait puts the caller of c into queue q: it sends 182 Queued with the caller's position
// ("Queued (position 2)") on arrival, whenever the caller moves up and every Announce, and when
// the caller is first in line offers it to the agents by the queue's strategy (see pick). It
// returns when an agent answered (Result.Answered), the wait timed out (status 408), the queue
// was full (486), has no members or none logged in (480), or the caller hung up (487). With the
// media relay the caller hears Music meanwhile; without, its own ringback.
func (qs *Queues) Wait(ctx context.Context, c *b2bua.Call, q *Queue, opts QueueOptions) (b2bua.Result, error) {
	if c.Decided() {
		return b2bua.Result{Status: 487, Reason: "the call is already decided"}, b2bua.ErrDecided
	}
	if len(q.Members) == 0 {
		return refused(c, 480, fmt.Sprintf("queue %s has no members", q.Name)), nil
	}
	if !anyLoggedIn(q.Members) {
		return refused(c, 480, fmt.Sprintf("no agent of queue %s is logged in", q.Name)), nil
	}
	opts = opts.withDefaults(q)
	w, pos, ok := qs.join(q.Name, q.MaxLen)
	if !ok {
		return refused(c, 486, fmt.Sprintf("queue %s is full", q.Name)), nil
	}
	if pos, ok = qs.joinShared(ctx, q, c.ID(), pos); !ok {
		qs.turnAway(q.Name, w)
		return refused(c, 486, fmt.Sprintf("queue %s is full", q.Name)), nil
	}
	qs.changed(QueueChange{Kind: QueueJoined, Queue: q.Name, CallID: c.ID(), Position: pos})
	r, err := qs.wait(ctx, c, q, w, pos, opts)
	qs.leaveShared(q.Name, c.ID())
	qs.leave(q.Name, w, r.Answered, r.Status)
	qs.changed(QueueChange{Kind: QueueLeft, Queue: q.Name, CallID: c.ID(), Answered: r.Answered, Status: r.Status})
	return r, err
}

func (qs *Queues) wait(ctx context.Context, c *b2bua.Call, q *Queue, w *waiter, pos int, opts QueueOptions) (b2bua.Result, error) {
	if err := c.Provisional(182, queuedPhrase(pos)); err != nil {
		return b2bua.Result{Status: 487, Reason: "the caller is gone"}, err
	}
	if opts.Music != "" || opts.Announcement != "" && opts.Announce > 0 {
		stop := playWhileWaiting(ctx, c, b2bua.Audio{Music: opts.Music, Announcement: opts.Announcement, Every: opts.Announce})
		defer stop()
	}
	if opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
	}
	var announce <-chan time.Time
	if opts.Announce > 0 {
		t := time.NewTicker(opts.Announce)
		defer t.Stop()
		announce = t.C
	}
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		select {
		case <-retry.C:
			if now := qs.place(ctx, q.Name, c.ID(), w); now != 1 {
				if qs.shared == nil {
					continue // moving up to the front starts the next attempt
				}
				// Callers of other nodes leave unseen: look again after a while, and tell the
				// caller when it moved up.
				if now < pos {
					pos = now
					if err := c.Provisional(182, queuedPhrase(pos)); err != nil {
						return b2bua.Result{Status: 487, Reason: "the caller is gone"}, err
					}
				}
				retry.Reset(opts.Retry)
				continue
			}
			if pos != 1 && qs.shared != nil {
				pos = 1 // moved up as callers of other nodes left
				if err := c.Provisional(182, queuedPhrase(pos)); err != nil {
					return b2bua.Result{Status: 487, Reason: "the caller is gone"}, err
				}
			}
			r, done, next, err := qs.offer(ctx, c, q, w, opts)
			if done {
				return r, err
			}
			retry.Reset(next)
		case <-w.moved:
			pos = qs.place(ctx, q.Name, c.ID(), w)
			if err := c.Provisional(182, queuedPhrase(pos)); err != nil {
				return b2bua.Result{Status: 487, Reason: "the caller is gone"}, err
			}
			if pos == 1 {
				retry.Reset(0)
			}
		case <-announce:
			if err := c.Provisional(182, queuedPhrase(qs.place(ctx, q.Name, c.ID(), w))); err != nil {
				return b2bua.Result{Status: 487, Reason: "the caller is gone"}, err
			}
		case <-ctx.Done():
			return qs.gaveUp(ctx, c, q)
		}
	}
}

// playWhileWaiting plays hold audio to the caller until the returned function is called (an
// agent answering stops it too).
func playWhileWaiting(ctx context.Context, c *b2bua.Call, what b2bua.Audio) (stop func()) {
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.PlayAudioToCaller(mctx, what) // without a relay there is nothing to play with
	}()
	return func() {
		cancel()
		<-done
	}
}

// offer makes one attempt: it rings the agents pick chooses. done says whether waiting is over;
// otherwise next is when to try again.
func (qs *Queues) offer(ctx context.Context, c *b2bua.Call, q *Queue, w *waiter, opts QueueOptions) (r b2bua.Result, done bool, next time.Duration, err error) {
	cur := qs.refresh(ctx, q)
	ring, more := qs.pick(q.Name, cur, w, c.Engine().InCall)
	ring = qs.claim(ctx, c.ID(), ring)
	if len(ring) == 0 {
		return b2bua.Result{}, false, opts.Retry, nil
	}
	r, err = c.Connect(ctx, ring, b2bua.ConnectOptions{Timeout: cmp.Or(cur.RingTimeout, opts.RingTimeout)})
	qs.release(ring)
	agent := ""
	if r.Answered {
		agent = c.Record().Callee
	}
	qs.unclaim(c, ring, agent)
	switch {
	case r.Answered:
		qs.answeredBy(q.Name, agent)
		c.OnEnd(func(b2bua.Record) { qs.callEnded(q.Name, agent) })
		return r, true, 0, err
	case err != nil || c.Decided():
		return r, true, 0, err
	case ctx.Err() != nil:
		r, err = qs.gaveUp(ctx, c, q)
		return r, true, 0, err
	case more:
		return r, false, 0, nil
	}
	return r, false, opts.Retry, nil
}

// refresh looks q up again for its current members and settings; q stands when that fails.
func (qs *Queues) refresh(ctx context.Context, q *Queue) *Queue {
	if qs.dir == nil {
		return q
	}
	cur, err := qs.dir.Queue(ctx, q.Name)
	if err != nil || cur == nil {
		return q
	}
	return cur
}

func (qs *Queues) gaveUp(ctx context.Context, c *b2bua.Call, q *Queue) (b2bua.Result, error) {
	if ctx.Err() == context.DeadlineExceeded && !c.Decided() {
		why := fmt.Sprintf("no member of queue %s answered in time", q.Name)
		c.SetFallback(408, why)
		return b2bua.Result{Status: 408, Reason: why}, nil
	}
	return b2bua.Result{Status: 487, Reason: "the caller stopped waiting"}, nil
}

func anyLoggedIn(agents []Agent) bool {
	for _, a := range agents {
		if !a.LoggedOut {
			return true
		}
	}
	return false
}

func queuedPhrase(pos int) string { return fmt.Sprintf("Queued (position %d)", pos) }
