package dialplan

import (
	"slices"
	"time"
)

// What the queues remember between calls, kept under Queues.mu: who waits where, each queue's
// counters and agents' histories, and which agents are being rung.

// queueState is one queue's memory.
type queueState struct {
	waiting   []*waiter
	lastTried string                 // roundrobin: the agent offered last, the next one follows it
	agents    map[string]*agentStats // by extension: this queue's calls per agent
	stats     QueueStats             // counters; Waiting and LongestWait are computed on demand
}

// agentStats is an agent's history in one queue.
type agentStats struct {
	calls   int       // calls of the queue answered (fewestcalls)
	lastEnd time.Time // when the last of them ended (leastrecent); zero: none yet
}

type waiter struct {
	moved chan struct{} // signalled (without blocking) when the waiter moved up the queue
	since time.Time
	tried map[string]bool // agents offered this caller in the current round
}

// QueueStats are a queue's figures since the PBX started.
type QueueStats struct {
	Waiting     int           // callers waiting now
	LongestWait time.Duration // how long the first of them has waited
	Answered    int           // callers an agent answered
	Abandoned   int           // callers who hung up while waiting
	TimedOut    int           // callers whose wait ran out (408)
	Full        int           // callers turned away because the queue was full (486)
}

func (qs *Queues) state(name string) *queueState {
	st := qs.queues[name]
	if st == nil {
		st = &queueState{agents: map[string]*agentStats{}}
		qs.queues[name] = st
	}
	return st
}

func (st *queueState) agent(ext string) *agentStats {
	a := st.agents[ext]
	if a == nil {
		a = &agentStats{}
		st.agents[ext] = a
	}
	return a
}

// Waiting returns how many callers wait in the named queue.
func (qs *Queues) Waiting(name string) int {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	if st := qs.queues[name]; st != nil {
		return len(st.waiting)
	}
	return 0
}

// Stats returns the named queue's figures; a queue no caller has entered yet has none.
func (qs *Queues) Stats(name string) QueueStats {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	st := qs.queues[name]
	if st == nil {
		return QueueStats{}
	}
	out := st.stats
	out.Waiting = len(st.waiting)
	if len(st.waiting) > 0 {
		out.LongestWait = qs.now().Sub(st.waiting[0].since)
	}
	return out
}

func (qs *Queues) join(name string, max int) (*waiter, int, bool) {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	st := qs.state(name)
	if max > 0 && len(st.waiting) >= max {
		st.stats.Full++
		return nil, 0, false
	}
	w := &waiter{moved: make(chan struct{}, 1), since: qs.now(), tried: map[string]bool{}}
	st.waiting = append(st.waiting, w)
	return w, len(st.waiting), true
}

func (qs *Queues) position(name string, w *waiter) int {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	return slices.Index(qs.state(name).waiting, w) + 1
}

// leave takes w out of the queue, counts how its wait ended and tells those behind it they moved
// up.
func (qs *Queues) leave(name string, w *waiter, answered bool, status int) {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	st := qs.state(name)
	switch {
	case answered:
		st.stats.Answered++
	case status == 408:
		st.stats.TimedOut++
	default:
		st.stats.Abandoned++
	}
	i := slices.Index(st.waiting, w)
	if i < 0 {
		return
	}
	st.waiting = slices.Delete(st.waiting, i, i+1)
	for _, o := range st.waiting[i:] {
		select {
		case o.moved <- struct{}{}:
		default:
		}
	}
}

// turnAway takes w out of the queue it just joined, counted as turned away because the queue
// is full across the nodes (WaitingList).
func (qs *Queues) turnAway(name string, w *waiter) {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	st := qs.state(name)
	st.stats.Full++
	if i := slices.Index(st.waiting, w); i >= 0 {
		st.waiting = slices.Delete(st.waiting, i, i+1)
	}
}

// answeredBy notes that ext took a call of the queue.
func (qs *Queues) answeredBy(name, ext string) {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	qs.state(name).agent(ext).calls++
}

// callEnded starts ext's wrap-up and notes the end for leastrecent.
func (qs *Queues) callEnded(name, ext string) {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	now := qs.now()
	qs.state(name).agent(ext).lastEnd = now
	qs.lastEnd[ext] = now
}

// release ends the offer of a call to the agents of ring.
func (qs *Queues) release(ring []string) {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	for _, ext := range ring {
		if qs.offered[ext]--; qs.offered[ext] <= 0 {
			delete(qs.offered, ext)
		}
	}
}
