package pbx

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pbxkit/pbxkit/dialplan"
	"github.com/pbxkit/pbxkit/store"
)

// The directory's queues, agents and ring groups: what dialplan.Queues, default routing and the
// Lua pbx.queue_* functions read and change through the store.

var (
	_ dialplan.AgentDirectory = directory{}
	_ dialplan.GroupDirectory = directory{}
)

// agentStore is what the directory needs of a store to change agents' state.
type agentStore interface {
	QueueMemberships(ctx context.Context, ext string) ([]store.Membership, error)
	UpdateQueueMembers(ctx context.Context, queue, ext string, p store.QueueMemberPatch) (int64, error)
}

func (d directory) Queue(ctx context.Context, name string) (*dialplan.Queue, error) {
	qd, ok := d.p.store.(store.QueueDirectory)
	if !ok || store.ValidateNumber(name) != nil {
		return nil, nil
	}
	q, err := qd.Queue(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := &dialplan.Queue{Name: q.Name, Strategy: q.Strategy, MaxLen: q.MaxLen, Music: q.Music,
		MaxWait: seconds(q.MaxWait), Announce: seconds(q.Announce), WrapUp: seconds(q.WrapUp),
		RingTimeout: seconds(q.RingTimeout)}
	for _, m := range q.Members {
		out.Members = append(out.Members, agentOf(m))
	}
	return out, nil
}

func agentOf(m store.QueueMember) dialplan.Agent {
	return dialplan.Agent{Extension: m.Extension, Penalty: m.Penalty, Paused: m.Paused,
		PauseReason: m.PauseReason, LoggedOut: m.LoggedOut}
}

func (d directory) Memberships(ctx context.Context, ext string) ([]dialplan.Membership, error) {
	as, ok := d.p.store.(agentStore)
	if !ok || store.ValidateNumber(ext) != nil {
		return nil, nil
	}
	ms, err := as.QueueMemberships(ctx, ext)
	if err != nil {
		return nil, err
	}
	out := make([]dialplan.Membership, 0, len(ms))
	for _, m := range ms {
		out = append(out, dialplan.Membership{Queue: m.Queue, Agent: agentOf(m.QueueMember)})
	}
	return out, nil
}

func (d directory) SetAgent(ctx context.Context, queue, ext string, ch dialplan.AgentChange) (int, error) {
	as, ok := d.p.store.(agentStore)
	if !ok {
		return 0, errors.New("pbx: the store keeps no queue agents")
	}
	p := store.QueueMemberPatch{Paused: ch.Paused, LoggedOut: ch.LoggedOut}
	if ch.Paused != nil && *ch.Paused {
		p.PauseReason = &ch.Reason
	}
	n, err := as.UpdateQueueMembers(ctx, queue, ext, p)
	if errors.Is(err, store.ErrNotFound) {
		return 0, fmt.Errorf("%w: %w", dialplan.ErrNotMember, err)
	}
	if err == nil {
		d.p.log.Info("queue agent changed", "queue", queue, "ext", ext, "paused", fmtPtr(ch.Paused),
			"reason", ch.Reason, "logged_out", fmtPtr(ch.LoggedOut), "memberships", n)
	}
	return int(n), err
}

func (d directory) Group(ctx context.Context, number string) (*dialplan.Group, error) {
	gd, ok := d.p.store.(store.GroupDirectory)
	if !ok || store.ValidateNumber(number) != nil {
		return nil, nil
	}
	g, err := gd.Group(ctx, number)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := &dialplan.Group{Number: g.Number, Strategy: g.Strategy, MemberTimeout: seconds(g.MemberTimeout)}
	for _, m := range g.Members {
		out.Members = append(out.Members, m.Extension)
	}
	return out, nil
}

// seconds turns a number of seconds from the store into a duration.
func seconds(n int) time.Duration { return time.Duration(n) * time.Second }

// fmtPtr shows an optional flag in a log line.
func fmtPtr(b *bool) string {
	if b == nil {
		return "-"
	}
	return fmt.Sprint(*b)
}
