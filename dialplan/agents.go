package dialplan

import (
	"context"
	"errors"
)

// Queue strategies: how a waiting caller is offered to the free agents of the lowest tier.
const (
	StrategyRingAll     = "ringall"     // every free agent at once
	StrategyRoundRobin  = "roundrobin"  // one at a time, going on from the agent the queue tried last
	StrategyLeastRecent = "leastrecent" // one at a time, the agent whose last queue call ended longest ago
	StrategyFewestCalls = "fewestcalls" // one at a time, the agent who answered fewest calls of the queue
	StrategyRandom      = "random"      // one at a time, any free agent
	StrategyLinear      = "linear"      // one at a time, in the queue's order, from the first for each caller
)

// ErrNotMember is returned (wrapped) when an extension is not a member of the queue named.
var ErrNotMember = errors.New("dialplan: not a member of that queue")

// AgentDirectory changes agents' state. A Directory that implements it lets scripts pause agents
// (pbx.queue_pause) and lets default routing serve the pause feature code.
type AgentDirectory interface {
	// Memberships lists the queues ext is a member of, with its state in each.
	Memberships(ctx context.Context, ext string) ([]Membership, error)
	// SetAgent changes ext's state in the named queue, or in every queue of ext when queue is
	// "". It returns how many memberships changed, or an error wrapping ErrNotMember.
	SetAgent(ctx context.Context, queue, ext string, ch AgentChange) (int, error)
}

// Membership is an agent's state in one queue.
type Membership struct {
	Queue string
	Agent
}

// AgentChange changes an agent's state; nil fields stay as they are. Unpausing clears the
// reason.
type AgentChange struct {
	Paused    *bool
	Reason    string // the pause reason, with Paused true
	LoggedOut *bool
}

// PauseToggle pauses ext in every queue it is a member of, or unpauses it everywhere when it is
// paused in each of them already (what the pause feature code does). It returns whether ext is
// paused now and its queues; none (and no error) when ext is in no queue.
func PauseToggle(ctx context.Context, dir AgentDirectory, ext, reason string) (paused bool, queues []string, err error) {
	ms, err := dir.Memberships(ctx, ext)
	if err != nil || len(ms) == 0 {
		return false, nil, err
	}
	paused = false
	for _, m := range ms {
		queues = append(queues, m.Queue)
		if !m.Paused {
			paused = true // pause everywhere unless paused everywhere already
		}
	}
	_, err = dir.SetAgent(ctx, "", ext, AgentChange{Paused: &paused, Reason: reason})
	return paused, queues, err
}
