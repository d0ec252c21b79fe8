package dialplan

import (
	"context"
	"fmt"
	"time"

	"github.com/pbxkit/pbxkit/b2bua"
)

// Ring group strategies.
const (
	GroupParallel = "parallel" // every member rings at once; the first to answer takes the call
	GroupHunt     = "hunt"     // one member after the other, in order, each for the member timeout
)

// Group is a ring group: a number that rings its members.
type Group struct {
	Number   string
	Strategy string   // GroupParallel ("" too) or GroupHunt
	Members  []string // extension numbers or sip: URIs, in hunt order
	// MemberTimeout is how long each member rings in a hunt, or all of them in parallel; 0 for
	// the ConnectOptions' Timeout, else the engine's ring timeout.
	MemberTimeout time.Duration
}

// GroupDirectory finds ring groups by number. A Directory that implements it lets default
// routing route a call to a group's number to the group. Group returns nil and no error for a
// number that is no group's.
type GroupDirectory interface {
	Group(ctx context.Context, number string) (*Group, error)
}

// RingGroup rings g's members as its strategy says and returns what came of it, as Connect does:
// the caller is connected when a member answered, and otherwise left undecided with the
// Result's status as its answer should routing end there. A hunt rings each member in turn for
// MemberTimeout, going on to the next when one does not answer, is busy or cannot be reached;
// when none answered the status is 486 if every member was busy, else 480.
func RingGroup(ctx context.Context, c *b2bua.Call, g Group, opts b2bua.ConnectOptions) (b2bua.Result, error) {
	if len(g.Members) == 0 {
		return refused(c, 480, fmt.Sprintf("ring group %s has no members", g.Number)), nil
	}
	if g.MemberTimeout > 0 {
		opts.Timeout = g.MemberTimeout
	}
	switch g.Strategy {
	case "", GroupParallel:
		return c.Connect(ctx, g.Members, opts)
	case GroupHunt:
		return hunt(ctx, c, g, opts)
	}
	return b2bua.Result{}, fmt.Errorf("dialplan: ring group strategy %q is not parallel or hunt", g.Strategy)
}

func hunt(ctx context.Context, c *b2bua.Call, g Group, opts b2bua.ConnectOptions) (b2bua.Result, error) {
	busy := true
	for _, m := range g.Members {
		r, err := c.Connect(ctx, []string{m}, opts)
		if err != nil || r.Answered || c.Decided() || ctx.Err() != nil {
			return r, err
		}
		busy = busy && (r.Status == 486 || r.Status == 600)
	}
	if busy {
		return refused(c, 486, fmt.Sprintf("every member of ring group %s is busy", g.Number)), nil
	}
	return refused(c, 480, fmt.Sprintf("no member of ring group %s answered", g.Number)), nil
}
