package pbx

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// EventPackageDialog is the event package of busy lamps (RFC 4235). pbxkit also serves
// message-summary (RFC 3842, mwi.go) when its store keeps voicemail; a SUBSCRIBE for another
// package gets 489 Bad Event with Allow-Events naming those served.
const EventPackageDialog = "dialog"

// allowEvents is the Allow-Events value: the event packages the PBX serves.
func (p *PBX) allowEvents() string {
	if p.presence != nil && p.presence.mailboxes != nil {
		return EventPackageDialog + ", " + EventPackageMessageSummary
	}
	return EventPackageDialog
}

// subscribeRequest is what a valid SUBSCRIBE asks for.
type subscribeRequest struct {
	pkg     string        // EventPackageDialog or EventPackageMessageSummary
	eventID string        // the Event header's id parameter, echoed in every NOTIFY
	expires time.Duration // granted: 0 unsubscribes (or fetches)
	contact *sip.ContactHeader
}

// handleSubscribe serves SUBSCRIBE (RFC 6665 §4.2.1): a new subscription to an extension's
// dialogs, or, inside a subscription's dialog, its refresh or removal.
func (p *PBX) handleSubscribe(ctx context.Context, req *sip.Request, tx sip.ServerTransaction, inDialog bool) {
	sr, rej := p.parseSubscribe(req, inDialog)
	if rej != nil {
		p.reply(req, tx, rej.code, rej.warning, rej.headers...)
		return
	}
	if inDialog {
		p.resubscribe(req, tx, sr)
		return
	}
	user, ok := p.authorize(ctx, req, tx, false)
	if !ok {
		return
	}
	// The extension watched is the Request-URI's user (RFC 4235 §3.1); To names the same resource
	// in practice, and is used when the Request-URI has no user.
	ext := req.Recipient.User
	if ext == "" {
		ext = req.To().Address.User
	}
	if ext == "" {
		p.reply(req, tx, 404, "SUBSCRIBE names no extension")
		return
	}
	// Phones set up with a voicemail number subscribe to it (sip:*97@pbx): that is their own
	// mailbox.
	if sr.pkg == EventPackageMessageSummary && user != nil && ext == on(p.cfg.Features.VoicemailMain) {
		ext = user.Number
	}
	// A mailbox's lamp is its owner's: another extension learns nothing of it (RFC 3842 §6).
	// A trusted source, which authenticates as no one, is trusted with it as with calls.
	if sr.pkg == EventPackageMessageSummary && user != nil && user.Number != ext {
		p.reply(req, tx, 403, "only the owner of mailbox "+ext+" may subscribe to it")
		return
	}
	// A park slot's lamp shows the call parked there (presence.go).
	parkSlot := sr.pkg == EventPackageDialog && p.calls.IsParkSlot(ext)
	if _, err := p.store.Extension(ctx, ext); err != nil && !parkSlot {
		p.replyStoreError(req, tx, "subscribe", err)
		return
	}
	p.subscribe(req, tx, ext, sr)
}

// parseSubscribe checks a SUBSCRIBE's Event, Accept, Expires and Contact.
func (p *PBX) parseSubscribe(req *sip.Request, inDialog bool) (subscribeRequest, *rejection) {
	var sr subscribeRequest
	allowEvents := sip.NewHeader("Allow-Events", p.allowEvents())
	ev := req.GetHeader("Event")
	if ev == nil {
		ev = req.GetHeader("o") // compact form (RFC 6665 §8.2.1)
	}
	if ev == nil {
		return sr, &rejection{code: 400, warning: "SUBSCRIBE needs an Event header", headers: []sip.Header{allowEvents}}
	}
	pkg, params, _ := strings.Cut(ev.Value(), ";")
	pkg = strings.ToLower(strings.TrimSpace(pkg))
	contentType, defaultExpires := ContentTypeDialogInfo, DialogEventExpires
	switch {
	case pkg == EventPackageDialog:
	case pkg == EventPackageMessageSummary && p.presence.mailboxes != nil:
		contentType, defaultExpires = ContentTypeMessageSummary, MessageSummaryExpires
	default:
		return sr, &rejection{code: 489, warning: "only the " + p.allowEvents() + " event packages are served",
			headers: []sip.Header{allowEvents}}
	}
	sr.pkg = pkg
	sr.eventID = eventID(params)
	if !accepts(req, contentType) {
		return sr, &rejection{code: 406, warning: "NOTIFYs carry " + contentType + ", which Accept excludes",
			headers: []sip.Header{sip.NewHeader("Accept", contentType)}}
	}
	exp, rej := p.subscriptionExpiry(req, defaultExpires)
	if rej != nil {
		return sr, rej
	}
	sr.expires = exp
	for _, h := range req.GetHeaders("Contact") {
		if c, ok := h.(*sip.ContactHeader); ok && !c.Address.Wildcard {
			sr.contact = c
			break
		}
	}
	if tag, _ := req.From().Params.Get("tag"); tag == "" {
		return sr, reject(400, "SUBSCRIBE needs a From tag") // RFC 3261 §8.1.1.3: the dialog's remote tag
	}
	if sr.contact == nil && !inDialog {
		return sr, reject(400, "SUBSCRIBE needs a Contact")
	}
	if sr.contact != nil {
		if s := strings.ToLower(sr.contact.Address.Scheme); s != "sip" && s != "sips" {
			return sr, reject(400, "Contact must be a sip: or sips: URI")
		}
	}
	return sr, nil
}

// subscriptionExpiry reads Expires: absent, the package's default; 0 stays 0; shorter than
// SubscriptionMinExpires is 423 with Min-Expires; longer than SubscriptionMaxExpires is shortened.
func (p *PBX) subscriptionExpiry(req *sip.Request, byDefault time.Duration) (time.Duration, *rejection) {
	h := req.GetHeader("Expires")
	if h == nil {
		return min(byDefault, p.cfg.SubscriptionMaxExpires), nil
	}
	n, err := strconv.ParseUint(strings.TrimSpace(h.Value()), 10, 32)
	if err != nil {
		return 0, reject(400, "Expires must be a number of seconds")
	}
	d := time.Duration(min(n, 1<<31-1)) * time.Second
	if d > 0 && d < p.cfg.SubscriptionMinExpires {
		return 0, &rejection{code: 423, warning: "subscription interval too brief",
			headers: []sip.Header{sip.NewHeader("Min-Expires", strconv.Itoa(int(p.cfg.SubscriptionMinExpires/time.Second)))}}
	}
	return min(d, p.cfg.SubscriptionMaxExpires), nil
}

// eventID returns the id parameter of an Event header's parameters (";id=x;y=z").
func eventID(params string) string {
	for _, p := range strings.Split(params, ";") {
		name, value, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(name), "id") {
			return strings.TrimSpace(value)
		}
	}
	return ""
}

// subscribe creates the subscription, answers 200 and starts its NOTIFYs. Expires 0 is a fetch
// (RFC 6665 §4.4.3): one NOTIFY with the state, terminated, and nothing kept.
func (p *PBX) subscribe(req *sip.Request, tx sip.ServerTransaction, ext string, sr subscribeRequest) {
	s := p.newSubscription(req, ext, sr)
	if sr.expires == 0 {
		s.end = reasonTimeout
	}
	if err := p.presence.add(s); err != nil {
		switch {
		case errors.Is(err, errSourceLimit):
			p.reply(req, tx, 403, "too many subscriptions from this source (limit "+strconv.Itoa(p.cfg.MaxSubscriptionsPerSource)+")")
		case errors.Is(err, errSubscriptionLimit):
			p.reply(req, tx, 503, "subscription limit reached", sip.NewHeader("Retry-After", "60"))
		default:
			p.reply(req, tx, 503, "shutting down")
		}
		return
	}
	res := p.response(req, 200, "", s.contact, sip.NewHeader("Expires", strconv.Itoa(int(sr.expires/time.Second))))
	res.To().Params.Add("tag", s.localTag)
	p.send(req, tx, res)
	s.log.Info("subscribed", "ext", ext, "event", sr.pkg, "src", req.Source(), "expires", int(sr.expires/time.Second))
	go s.run() // counted in the presence's wait group by add
}

// newSubscription builds the subscription a SUBSCRIBE creates, the PBX being the dialog's UAS
// (RFC 3261 §12.1.1): its tag is new, the route set is the Record-Route in order, the remote
// target the Contact; NOTIFYs go to the SUBSCRIBE's source address (RFC 3581), as calls do.
func (p *PBX) newSubscription(req *sip.Request, ext string, sr subscribeRequest) *subscription {
	src, _ := sourceIP(req)
	fromTag, _ := req.From().Params.Get("tag")
	localTag := randomToken(8)
	event := sr.pkg
	if sr.eventID != "" {
		event += ";id=" + sr.eventID
	}
	s := &subscription{
		pr: p.presence, ext: ext, pkg: sr.pkg, src: src, event: event, forced: true,
		log:    p.presence.log.With("ext", ext),
		callID: req.CallID().Value(), localTag: localTag, remoteTag: fromTag,
		localURI: *req.To().Address.Clone(), remoteURI: *req.From().Address.Clone(),
		target: *sr.contact.Address.Clone(), routes: routeSetOf(req),
		dest: req.Source(), transport: strings.ToLower(req.Transport()),
		contact: p.selfContact(req, ext), wake: make(chan struct{}, 1),
		expires: time.Now().Add(sr.expires), cseq: rand.Uint32N(1 << 15),
	}
	s.key = dialogKey(s.callID, s.localTag, s.remoteTag)
	return s
}

// resubscribe refreshes or removes (Expires: 0) the subscription whose dialog the SUBSCRIBE is
// in (RFC 6665 §4.2.1.2, §4.2.1.4); an unknown dialog is 481. In-dialog requests are not
// challenged, as in calls: the dialog was set up by an authenticated SUBSCRIBE.
func (p *PBX) resubscribe(req *sip.Request, tx sip.ServerTransaction, sr subscribeRequest) {
	toTag, _ := req.To().Params.Get("tag")
	fromTag, _ := req.From().Params.Get("tag")
	s := p.presence.lookup(dialogKey(req.CallID().Value(), toTag, fromTag))
	if s == nil || !s.active() {
		p.reply(req, tx, 481, "no such subscription")
		return
	}
	if s.pkg != sr.pkg { // RFC 6665 §4.1.2.1: a refresh names the subscription's package
		p.reply(req, tx, 489, "this subscription is to the "+s.pkg+" event package",
			sip.NewHeader("Allow-Events", p.allowEvents()))
		return
	}
	p.reply(req, tx, 200, "", s.contact, sip.NewHeader("Expires", strconv.Itoa(int(sr.expires/time.Second))))
	if sr.expires == 0 {
		s.log.Info("unsubscribed", "src", req.Source())
		s.terminate(reasonTimeout)
		return
	}
	s.refresh(time.Now().Add(sr.expires), sr.contact, req.Source())
}

// active reports whether the subscription has not begun to end.
func (s *subscription) active() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.end == ""
}

// selfContact is the PBX's Contact in a subscription: the watched extension at the PBX's
// address, with the SUBSCRIBE's transport.
func (p *PBX) selfContact(req *sip.Request, ext string) *sip.ContactHeader {
	transport := strings.ToLower(req.Transport())
	uri := sip.Uri{Scheme: "sip", User: ext, Host: p.advertisedHost(), Port: p.advertisedPort(transport)}
	if ip := net.ParseIP(uri.Host); ip != nil && ip.IsUnspecified() {
		uri.Host = req.Recipient.Host // the address the watcher reached the PBX at
	}
	if transport != "" && transport != "udp" {
		uri.UriParams = sip.NewParams()
		uri.UriParams.Add("transport", transport)
	}
	return &sip.ContactHeader{Address: uri}
}

// routeSetOf is the route set of the dialog a request creates, at its UAS: the Record-Route
// values in order (RFC 3261 §12.1.1).
func routeSetOf(req *sip.Request) []sip.Header {
	var out []sip.Header
	for _, h := range req.GetHeaders("Record-Route") {
		out = append(out, sip.NewHeader("Route", h.Value()))
	}
	return out
}

func dialogKey(callID, localTag, remoteTag string) string {
	return callID + "\x00" + localTag + "\x00" + remoteTag
}
