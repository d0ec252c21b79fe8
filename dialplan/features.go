package dialplan

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua"
)

// Default feature codes (officepbx's; docs/dialplan.md).
const (
	DefaultDirectedPickup = "**" // followed by the extension: **101 answers the call ringing at 101
	DefaultGroupPickup    = "*8" // answers a call ringing in the caller's pickup group
)

// Features are the numbers default routing answers itself instead of ringing an extension:
// pickup codes, and the park slots of the call engine (b2bua.ParkConfig), whose calls are
// retrieved by dialling them. Empty codes are off.
type Features struct {
	// DirectedPickup is the prefix of directed pickup: the prefix and an extension number picks
	// up the call ringing at that extension. Default routing's zero value uses no codes at all;
	// pbx sets DefaultDirectedPickup.
	DirectedPickup string
	// GroupPickup picks up the call ringing longest at an extension of the caller's pickup group.
	GroupPickup string
}

// PickupGroups is implemented by a Directory that knows pickup groups (pbx's does: the
// extensions' pickup_group setting).
type PickupGroups interface {
	// PickupGroup returns the extensions in the same pickup group as ext (ext included), none
	// when ext has no group.
	PickupGroup(ctx context.Context, ext string) ([]string, error)
}

// feature handles a call to a feature code or a park slot; handled is false for any other
// number.
func (d Default) feature(ctx context.Context, c *b2bua.Call) (handled bool, err error) {
	number := c.Callee()
	f := d.Features
	var r b2bua.Result
	switch ext, isPickup := strings.CutPrefix(number, f.DirectedPickup); {
	case f.GroupPickup != "" && number == f.GroupPickup:
		r, err = d.groupPickup(ctx, c)
	case f.DirectedPickup != "" && isPickup && ext != "":
		r, err = c.Pickup(ctx, ext)
	case c.Engine().IsParkSlot(number):
		r, err = c.Unpark(ctx, number)
	default:
		return false, nil
	}
	if err != nil || r.Answered || c.Decided() || ctx.Err() != nil {
		return true, err
	}
	var hdrs []sip.Header
	if d.Warning != nil && r.Reason != "" {
		hdrs = append(hdrs, sip.NewHeader("Warning", d.Warning(r.Reason)))
	}
	return true, c.Reject(r.Status, "", hdrs...)
}

// groupPickup picks up a call ringing at another extension of the caller's pickup group.
func (d Default) groupPickup(ctx context.Context, c *b2bua.Call) (b2bua.Result, error) {
	picker := c.User()
	if picker == "" {
		picker = c.Request().From().Address.User
	}
	pg, ok := d.Directory.(PickupGroups)
	if !ok {
		return refused(c, 480, "no pickup groups"), nil
	}
	members, err := pg.PickupGroup(ctx, picker)
	if err != nil {
		return b2bua.Result{}, fmt.Errorf("dialplan: pickup group of %s: %w", picker, err)
	}
	members = slices.DeleteFunc(members, func(m string) bool { return m == picker })
	if len(members) == 0 {
		return refused(c, 480, fmt.Sprintf("extension %s is in no pickup group", picker)), nil
	}
	return c.PickupAny(ctx, members)
}
