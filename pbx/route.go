package pbx

import (
	"context"
	"fmt"

	"github.com/emiago/sipgo/sip"
)

// routeInvite applies default routing to an authenticated INVITE when no dialplan is set: the
// Request-URI user is an extension. Unknown gets 404, disabled 410 (Gone), do-not-disturb 486
// (Busy Here), and an extension without a live registration 480 (Temporarily Unavailable). A
// call that passes all of these goes to the call core; until that is wired in it is answered 501.
func (p *PBX) routeInvite(ctx context.Context, req *sip.Request, tx sip.ServerTransaction) {
	number := req.Recipient.User
	if number == "" {
		p.reply(req, tx, 404, "the Request-URI names no extension")
		return
	}
	ext, err := p.store.Extension(ctx, number)
	if err != nil {
		p.replyStoreError(req, tx, "routing", err)
		return
	}
	switch {
	case !ext.Enabled:
		p.reply(req, tx, 410, fmt.Sprintf("extension %s is disabled", number))
		return
	case ext.DND:
		p.reply(req, tx, 486, "do not disturb")
		return
	}
	bindings, err := p.store.Bindings(ctx, number)
	if err != nil {
		p.replyStoreError(req, tx, "routing", err)
		return
	}
	if len(bindings) == 0 {
		p.reply(req, tx, 480, fmt.Sprintf("extension %s is not registered", number))
		return
	}
	p.reply(req, tx, 501, "calls are not wired into this PBX yet")
}
