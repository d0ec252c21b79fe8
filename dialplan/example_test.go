package dialplan_test

import (
	"context"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/dialplan"
)

// A blacklist in Go, then the extensions' stored settings for every other call: a Chain ending
// in default routing. With pbx, Config.Dialplan gets the blacklist alone and the PBX adds the
// default routing itself.
func ExampleDefault() {
	var dir dialplan.Directory // the PBX's: pbx.PBX.Directory()
	blacklist := dialplan.HandlerFunc(func(ctx context.Context, c *b2bua.Call) error {
		if c.Request().From().Address.User == "spam" {
			return c.Reject(603, "")
		}
		return nil // undecided: the next handler routes it
	})
	route := dialplan.Chain(blacklist, dialplan.Default{Directory: dir})
	_ = route // b2bua.Engine.Handle(req, tx, user, route.Handle)
}
