package pbx

import (
	"context"
	"errors"
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
	targets, err := p.targetsFor(ctx, number)
	if err != nil {
		var se *b2bua.StatusError
		if errors.As(err, &se) {
			p.reply(req, tx, se.Code, se.Reason)
			return
		}
		p.replyStoreError(req, tx, "routing", err)
		return
	}
	if p.cfg.MaxCalls > 0 && p.calls.Active() >= p.cfg.MaxCalls {
		p.reply(req, tx, 503, "too many calls", sip.NewHeader("Retry-After", "10"))
		return
	}
	p.calls.Connect(req, tx, number, targets)
}

// targetsFor applies default routing to an extension number: the contacts to ring, or a
// *b2bua.StatusError saying why the extension cannot be called (or a store error).
func (p *PBX) targetsFor(ctx context.Context, number string) ([]b2bua.Target, error) {
	if number == "" {
		return nil, &b2bua.StatusError{Code: 404, Reason: "the Request-URI names no extension"}
	}
	ext, err := p.store.Extension(ctx, number)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &b2bua.StatusError{Code: 404, Reason: "no such extension"}
	}
	if err != nil {
		return nil, err
	}
	switch {
	case !ext.Enabled:
		return nil, &b2bua.StatusError{Code: 410, Reason: fmt.Sprintf("extension %s is disabled", number)}
	case ext.DND:
		return nil, &b2bua.StatusError{Code: 486, Reason: "do not disturb"}
	}
	bindings, err := p.store.Bindings(ctx, number)
	if err != nil {
		return nil, err
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
	if len(targets) == 0 {
		return nil, &b2bua.StatusError{Code: 480, Reason: fmt.Sprintf("extension %s is not registered", number)}
	}
	return targets, nil
}

// resolveTransfer is the call core's Resolver: a transfer target is an extension of this PBX,
// routed like a call to it.
func (p *PBX) resolveTransfer(ctx context.Context, target sip.Uri) ([]b2bua.Target, error) {
	return p.targetsFor(ctx, target.User)
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
