package dialplan

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/pbxkit/pbxkit/b2bua"
)

// Queues keeps the callers waiting in each call queue, in order of arrival. One Queues serves
// every call of a PBX; its zero value is not usable, NewQueues makes one.
type Queues struct {
	mu      sync.Mutex
	waiting map[string][]*waiter
}

type waiter struct {
	moved chan struct{} // signalled (without blocking) when the waiter moved up the queue
}

// NewQueues returns an empty set of queues.
func NewQueues() *Queues { return &Queues{waiting: map[string][]*waiter{}} }

// QueueOptions say how long a caller waits and how it is kept informed. Zero fields take the
// queue's settings, then the defaults.
type QueueOptions struct {
	// Timeout is the longest the caller waits; then Wait returns status 408. Default: the
	// queue's MaxWait, or no limit.
	Timeout time.Duration
	// Announce is how often the caller hears its position again (182). Default: the queue's
	// Announce, or only once, on arrival.
	Announce time.Duration
	// RingTimeout is how long free members ring at each attempt. Default 15 s.
	RingTimeout time.Duration
	// Retry is the pause between attempts when no member was free or none answered. Default 1 s.
	Retry time.Duration
	// Music is what the caller hears while waiting, with the media relay on: "tone" (ringback) or
	// a WAV file. Default: the queue's Music; "" and no relay: the caller's own ringback.
	Music string
}

// Waiting returns how many callers wait in the named queue.
func (qs *Queues) Waiting(name string) int {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	return len(qs.waiting[name])
}

func (qs *Queues) join(name string, max int) (*waiter, int, bool) {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	if max > 0 && len(qs.waiting[name]) >= max {
		return nil, 0, false
	}
	w := &waiter{moved: make(chan struct{}, 1)}
	qs.waiting[name] = append(qs.waiting[name], w)
	return w, len(qs.waiting[name]), true
}

func (qs *Queues) position(name string, w *waiter) int {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	return slices.Index(qs.waiting[name], w) + 1
}

func (qs *Queues) leave(name string, w *waiter) {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	list := qs.waiting[name]
	i := slices.Index(list, w)
	if i < 0 {
		return
	}
	list = slices.Delete(list, i, i+1)
	for _, o := range list[i:] {
		select {
		case o.moved <- struct{}{}:
		default:
		}
	}
	if len(list) == 0 {
		delete(qs.waiting, name)
	} else {
		qs.waiting[name] = list
	}
}

// Wait puts the caller of c into queue q: it sends 182 Queued with the caller's position
// ("Queued (position 2)"), again every Announce, and when the caller is first in line rings
// every member of the queue that is not in a call, all at once. It returns when a member
// answered (Result.Answered), the wait timed out (status 408), the queue was full (status 486),
// the queue has no members (status 480), or the caller hung up (487). Hold audio while waiting
// comes with the media relay; until then the caller hears its own ringback.
func (qs *Queues) Wait(ctx context.Context, c *b2bua.Call, q *Queue, opts QueueOptions) (b2bua.Result, error) {
	if c.Decided() {
		return b2bua.Result{Status: 487, Reason: "the call is already decided"}, b2bua.ErrDecided
	}
	if len(q.Members) == 0 {
		return refused(c, 480, fmt.Sprintf("queue %s has no members", q.Name)), nil
	}
	if opts.Timeout == 0 {
		opts.Timeout = q.MaxWait
	}
	if opts.Announce == 0 {
		opts.Announce = q.Announce
	}
	if opts.RingTimeout <= 0 {
		opts.RingTimeout = 15 * time.Second
	}
	if opts.Retry <= 0 {
		opts.Retry = time.Second
	}
	w, pos, ok := qs.join(q.Name, q.MaxLen)
	if !ok {
		return refused(c, 486, fmt.Sprintf("queue %s is full", q.Name)), nil
	}
	defer qs.leave(q.Name, w)
	if err := c.Provisional(182, queuedPhrase(pos)); err != nil {
		return b2bua.Result{Status: 487, Reason: "the caller is gone"}, err
	}
	if music := cmp.Or(opts.Music, q.Music); music != "" {
		// Hold audio until a member answers (which stops it) or the wait is over.
		mctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = c.PlayToCaller(mctx, music) // without a relay there is nothing to play with
		}()
		defer func() {
			stop()
			<-done
		}()
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
			if qs.position(q.Name, w) == 1 {
				if r, done, err := qs.offer(ctx, c, q, opts); done {
					return r, err
				}
			}
			retry.Reset(opts.Retry)
		case <-w.moved:
			if qs.position(q.Name, w) == 1 {
				retry.Reset(0)
			}
		case <-announce:
			if err := c.Provisional(182, queuedPhrase(qs.position(q.Name, w))); err != nil {
				return b2bua.Result{Status: 487, Reason: "the caller is gone"}, err
			}
		case <-ctx.Done():
			return qs.gaveUp(ctx, c, q)
		}
	}
}

// offer rings the free members once; done says whether waiting is over.
func (qs *Queues) offer(ctx context.Context, c *b2bua.Call, q *Queue, opts QueueOptions) (b2bua.Result, bool, error) {
	free := make([]string, 0, len(q.Members))
	for _, m := range q.Members {
		if !c.Engine().InCall(m) {
			free = append(free, m)
		}
	}
	if len(free) == 0 {
		return b2bua.Result{}, false, nil
	}
	r, err := c.Connect(ctx, free, b2bua.ConnectOptions{Timeout: opts.RingTimeout})
	switch {
	case err != nil || r.Answered || c.Decided():
		return r, true, err
	case ctx.Err() != nil:
		r, err = qs.gaveUp(ctx, c, q)
		return r, true, err
	}
	return r, false, nil
}

func (qs *Queues) gaveUp(ctx context.Context, c *b2bua.Call, q *Queue) (b2bua.Result, error) {
	if ctx.Err() == context.DeadlineExceeded && !c.Decided() {
		why := fmt.Sprintf("no member of queue %s answered in time", q.Name)
		c.SetFallback(408, why)
		return b2bua.Result{Status: 408, Reason: why}, nil
	}
	return b2bua.Result{Status: 487, Reason: "the caller stopped waiting"}, nil
}

func queuedPhrase(pos int) string { return fmt.Sprintf("Queued (position %d)", pos) }
