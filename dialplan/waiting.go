package dialplan

import (
	"context"
	"time"
)

// WaitingList is one waiting list per queue shared by several PBX nodes: the callers of every
// node in order of arrival. With one (Queues.ShareWaiting), a caller is offered to the agents
// only when it is first among the callers of all nodes, and the positions it hears count them
// all. An error (the database away) falls back to this node's own list.
type WaitingList interface {
	// Join adds the call to the queue's list unless maxLen (> 0) callers wait there already, and
	// returns its position (1: first).
	Join(ctx context.Context, queue, callID string, maxLen int) (pos int, ok bool, err error)
	// Position returns the call's position, 0 when it is not in the list.
	Position(ctx context.Context, queue, callID string) (int, error)
	// Leave takes the call out of the list.
	Leave(queue, callID string)
}

// WaitingCounter is a WaitingList that counts the callers of every node (pbx's does): the
// figures of StatsAcross then count them all.
type WaitingCounter interface {
	// Waiting returns how many callers wait in the queue, on every node, and since when the first
	// of them waits.
	Waiting(ctx context.Context, queue string) (n int, since time.Time, err error)
}

// StatsAcross is Stats with Waiting and LongestWait counted over the callers of every node, when
// the waiting list is shared and counts them (WaitingCounter); the other figures are this
// node's. When the shared list cannot answer, this node's figures are returned.
func (qs *Queues) StatsAcross(ctx context.Context, name string) QueueStats {
	st := qs.Stats(name)
	wc, ok := qs.shared.(WaitingCounter)
	if !ok {
		return st
	}
	n, since, err := wc.Waiting(ctx, name)
	if err != nil {
		return st
	}
	st.Waiting, st.LongestWait = n, 0
	if n > 0 {
		st.LongestWait = max(qs.now().Sub(since), 0)
	}
	return st
}

// ShareWaiting makes the queues keep their waiting lists in wl too. Call it before the first
// Wait.
func (qs *Queues) ShareWaiting(wl WaitingList) { qs.shared = wl }

// joinShared adds the caller to the shared list; pos is its position there, or local when the
// shared list fails. ok is false when the queue is full across the nodes.
func (qs *Queues) joinShared(ctx context.Context, q *Queue, callID string, local int) (pos int, ok bool) {
	if qs.shared == nil {
		return local, true
	}
	pos, ok, err := qs.shared.Join(ctx, q.Name, callID, q.MaxLen)
	if err != nil || pos == 0 && ok {
		return local, true
	}
	return pos, ok
}

// place is the caller's position: in the shared list when there is one and it answers, else in
// this node's.
func (qs *Queues) place(ctx context.Context, name, callID string, w *waiter) int {
	if qs.shared != nil {
		if pos, err := qs.shared.Position(ctx, name, callID); err == nil && pos > 0 {
			return pos
		}
	}
	return qs.position(name, w)
}

func (qs *Queues) leaveShared(name, callID string) {
	if qs.shared != nil {
		qs.shared.Leave(name, callID)
	}
}
