package dialplan

import (
	"math"
	"slices"
	"time"
)

// pick chooses the agents to ring for the waiter w at this attempt, in the queue's strategy, and
// marks them offered. The candidates are the agents logged in, not paused, not in wrap-up, not
// in a call (busy) and not being rung for another caller, that w was not offered yet in this
// round (a round ends when every such agent was offered once); of those, the lowest penalty tier.
// more says whether agents remain untried in this round, so the next attempt may follow at once.
func (qs *Queues) pick(name string, q *Queue, w *waiter, busy func(ext string) bool) (ring []string, more bool) {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	st := qs.state(name)
	var free []Agent
	for _, a := range q.Members {
		if !a.Paused && !a.LoggedOut && qs.offered[a.Extension] == 0 && !qs.wrappingUp(a.Extension, q.WrapUp) && !busy(a.Extension) {
			free = append(free, a)
		}
	}
	cands := untried(free, w.tried)
	if len(cands) == 0 {
		clear(w.tried) // a new round
		cands = free
	}
	if len(cands) == 0 {
		return nil, false
	}
	cands = lowestTier(cands)
	if q.Strategy == "" || q.Strategy == StrategyRingAll {
		for _, a := range cands {
			ring = append(ring, a.Extension)
		}
	} else {
		ring = []string{qs.choose(st, q, cands)}
	}
	for _, ext := range ring {
		w.tried[ext] = true
		qs.offered[ext]++
	}
	if q.Strategy == StrategyRoundRobin {
		st.lastTried = ring[0]
	}
	return ring, len(untried(free, w.tried)) > 0
}

// choose picks one agent of cands (in the queue's order) by the queue's strategy.
func (qs *Queues) choose(st *queueState, q *Queue, cands []Agent) string {
	switch q.Strategy {
	case StrategyRoundRobin:
		i := slices.IndexFunc(q.Members, func(a Agent) bool { return a.Extension == st.lastTried })
		for n := 1; n <= len(q.Members); n++ {
			next := q.Members[(i+n)%len(q.Members)].Extension
			if slices.ContainsFunc(cands, func(a Agent) bool { return a.Extension == next }) {
				return next
			}
		}
	case StrategyLeastRecent:
		return minBy(cands, func(a Agent) int64 {
			if end := st.agent(a.Extension).lastEnd; !end.IsZero() {
				return end.UnixNano()
			}
			return math.MinInt64 // never had a call: first
		})
	case StrategyFewestCalls:
		return minBy(cands, func(a Agent) int64 { return int64(st.agent(a.Extension).calls) })
	case StrategyRandom:
		return cands[qs.intN(len(cands))].Extension
	}
	return cands[0].Extension // linear, and any strategy not known here
}

// wrappingUp reports whether ext's last queue call ended less than wrapUp ago.
func (qs *Queues) wrappingUp(ext string, wrapUp time.Duration) bool {
	end, ok := qs.lastEnd[ext]
	return ok && wrapUp > 0 && qs.now().Before(end.Add(wrapUp))
}

func untried(agents []Agent, tried map[string]bool) []Agent {
	var out []Agent
	for _, a := range agents {
		if !tried[a.Extension] {
			out = append(out, a)
		}
	}
	return out
}

// lowestTier keeps the agents of the lowest penalty, in order.
func lowestTier(agents []Agent) []Agent {
	low := slices.MinFunc(agents, func(a, b Agent) int { return a.Penalty - b.Penalty }).Penalty
	return slices.DeleteFunc(slices.Clone(agents), func(a Agent) bool { return a.Penalty != low })
}

// minBy returns the first agent with the smallest key.
func minBy(agents []Agent, key func(Agent) int64) string {
	best := 0
	for i := 1; i < len(agents); i++ {
		if key(agents[i]) < key(agents[best]) {
			best = i
		}
	}
	return agents[best].Extension
}
