package pbx

import (
	"context"
	"fmt"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/store"
)

// routeInvite applies default routing to an authenticated INVITE when no dialplan is set: the
// Request-URI user is an extension. Unknown gets 404, disabled 410 (Gone), do-not-disturb 486
// (Busy Here), and an extension without a live registration 480 (Temporarily Unavailable). A
// call that passes all of these rings every registered contact of the extension.
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
	if p.cfg.MaxCalls > 0 && p.calls.Active() >= p.cfg.MaxCalls {
		p.reply(req, tx, 503, "too many calls", sip.NewHeader("Retry-After", "10"))
		return
	}
	targets := make([]b2bua.Target, 0, len(bindings))
	for _, b := range bindings {
		var uri sip.Uri
		if err := sip.ParseUri(b.Contact, &uri); err != nil {
			p.log.Warn("unusable registered contact", "ext", number, "contact", b.Contact, "error", err)
			continue
		}
		targets = append(targets, b2bua.Target{URI: uri, Dest: b.Source, Transport: b.Transport})
	}
	p.calls.Connect(req, tx, number, targets)
}

// cdrWriter stores the call core's records as store CDRs.
type cdrWriter struct{ w store.CDRWriter }

func (c cdrWriter) WriteRecord(ctx context.Context, r b2bua.Record) error {
	cdr := &store.CDR{
		CallID: r.CallID, Caller: r.Caller, Callee: r.Callee, Source: r.Source,
		StartAt: r.Start, EndAt: r.End, Disposition: store.Disposition(r.Disposition()),
		Status: r.Status, HangupBy: r.HangupBy, Reason: r.Reason,
	}
	if !r.Answer.IsZero() {
		a := r.Answer
		cdr.AnswerAt = &a
	}
	return c.w.WriteCDR(ctx, cdr)
}
