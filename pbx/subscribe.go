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

// EventPackageDialog is the one event package pbxkit serves (RFC 4235): busy lamps. A SUBSCRIBE
// for another gets 489 Bad Event with Allow-Events naming it.
const EventPackageDialog = "dialog"

// subscribeRequest is what a valid SUBSCRIBE asks for.
type subscribeRequest struct {
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
	if _, ok := p.authorize(ctx, req, tx, false); !ok {
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
	if _, err := p.store.Extension(ctx, ext); err != nil {
		p.replyStoreError(req, tx, "subscribe", err)
		return
	}
	p.subscribe(req, tx, ext, sr)
}

// parseSubscribe checks a SUBSCRIBE's Event, Accept, Expires and Contact.
func (p *PBX) parseSubscribe(req *sip.Request, inDialog bool) (subscribeRequest, *rejection) {
	var sr subscribeRequest
	allowEvents := sip.NewHeader("Allow-Events", EventPackageDialog)
	ev := req.GetHeader("Event")
	if ev == nil {
		ev = req.GetHeader("o") // compact form (RFC 6665 §8.2.1)
	}
	if ev == nil {
		return sr, &rejection{code: 400, warning: "SUBSCRIBE needs an Event header", headers: []sip.Header{allowEvents}}
	}
	pkg, params, _ := strings.Cut(ev.Value(), ";")
	if !strings.EqualFold(strings.TrimSpace(pkg), EventPackageDialog) {
		return sr, &rejection{code: 489, warning: "only the dialog event package is served",
			headers: []sip.Header{allowEvents}}
	}
	sr.eventID = eventID(params)
	if !accepts(req, ContentTypeDialogInfo) {
		return sr, &rejection{code: 406, warning: "NOTIFYs carry " + ContentTypeDialogInfo + ", which Accept excludes",
			headers: []sip.Header{sip.NewHeader("Accept", ContentTypeDialogInfo)}}
	}
	exp, rej := p.subscriptionExpiry(req)
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

// subscriptionExpiry reads Expires: absent, RFC 4235's default; 0 stays 0; shorter than
// SubscriptionMinExpires is 423 with Min-Expires; longer than SubscriptionMaxExpires is shortened.
func (p *PBX) subscriptionExpiry(req *sip.Request) (time.Duration, *rejection) {
	h := req.GetHeader("Expires")
	if h == nil {
		return min(DialogEventExpires, p.cfg.SubscriptionMaxExpires), nil
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
	s.log.Info("subscribed", "ext", ext, "src", req.Source(), "expires", int(sr.expires/time.Second))
	go s.run() // counted in the presence's wait group by add
}

// newSubscription builds the subscription a SUBSCRIBE creates, the PBX being the dialog's UAS
// (RFC 3261 §12.1.1): its tag is new, the route set is the Record-Route in order, the remote
// target the Contact; NOTIFYs go to the SUBSCRIBE's source address (RFC 3581), as calls do.
func (p *PBX) newSubscription(req *sip.Request, ext string, sr subscribeRequest) *subscription {
	src, _ := sourceIP(req)
	fromTag, _ := req.From().Params.Get("tag")
	localTag := randomToken(8)
	event := EventPackageDialog
	if sr.eventID != "" {
		event += ";id=" + sr.eventID
	}
	s := &subscription{
		pr: p.presence, ext: ext, src: src, event: event,
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
