package pbx

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/store"
)

// registrar implements REGISTER processing (RFC 3261 §10.3) over the store's Locations.
type registrar struct {
	p     *PBX
	locks *keyedMutex // one REGISTER per extension at a time: max-contacts and CSeq checks read then write
}

// contactUpdate is one Contact of a REGISTER, resolved to an expiry.
type contactUpdate struct {
	uri     string
	expires time.Duration // 0 removes the binding
	q       float64
}

func (r *registrar) handle(ctx context.Context, req *sip.Request, tx sip.ServerTransaction) {
	updates, wildcard, aor, ok := r.admit(ctx, req, tx)
	if !ok {
		return
	}
	unlock := r.locks.lock(aor)
	defer unlock()
	current, err := r.p.store.Bindings(ctx, aor)
	if err != nil {
		r.storeError(req, tx, err)
		return
	}
	callID, cseq := req.CallID().Value(), req.CSeq().SeqNo
	for _, b := range current {
		if b.CallID == callID && cseq <= b.CSeq && (wildcard || updatesContact(updates, b.Contact)) {
			// RFC 3261 §10.3 step 7: same Call-ID, CSeq not higher: the update fails.
			r.p.reply(req, tx, 400, "CSeq out of order for this Call-ID")
			return
		}
	}
	if wildcard {
		r.removeAll(ctx, req, tx, aor, current)
		return
	}
	evict, rej := r.makeRoom(current, updates)
	if rej != nil {
		r.p.reply(req, tx, rej.code, rej.warning, rej.headers...)
		return
	}
	live, err := r.apply(ctx, req, aor, current, updates, evict)
	if err != nil {
		r.storeError(req, tx, err)
		return
	}
	r.ok(req, tx, live)
}

// admit checks a REGISTER's To, Contacts and credentials (or trusted source) and returns its
// updates and the extension (AOR) it registers; a refusal has been answered when ok is false.
func (r *registrar) admit(ctx context.Context, req *sip.Request, tx sip.ServerTransaction) (updates []contactUpdate, wildcard bool, aor string, ok bool) {
	p := r.p
	to := req.To()
	// The AOR in To must be a SIP or SIPS URI naming an extension (RFC 3261 §10.3 step 3;
	// RFC 4475 §3.3.4).
	if s := strings.ToLower(to.Address.Scheme); (s != "sip" && s != "sips") || to.Address.User == "" {
		p.reply(req, tx, 400, "To must be a sip: or sips: URI naming an extension")
		return nil, false, "", false
	}
	updates, wildcard, rej := r.parseContacts(req)
	if rej != nil {
		p.reply(req, tx, rej.code, rej.warning, rej.headers...)
		return nil, false, "", false
	}
	ext, ok := p.authorize(ctx, req, tx, false)
	if !ok {
		return nil, false, "", false
	}
	aor = to.Address.User
	if ext != nil && ext.Number != aor {
		p.reply(req, tx, 403, "credentials may only register their own extension")
		return nil, false, "", false
	}
	if ext == nil { // trusted source: the extension must still exist
		e, err := p.store.Extension(ctx, aor)
		if err != nil {
			r.storeError(req, tx, err)
			return nil, false, "", false
		}
		if !e.Enabled {
			p.reply(req, tx, 403, "extension disabled")
			return nil, false, "", false
		}
	}
	return updates, wildcard, aor, true
}

func updatesContact(updates []contactUpdate, contact string) bool {
	for _, u := range updates {
		if u.uri == contact {
			return true
		}
	}
	return false
}

// removeAll handles "Contact: *" with Expires 0: every binding of aor goes (RFC 3261 §10.3 step 6).
func (r *registrar) removeAll(ctx context.Context, req *sip.Request, tx sip.ServerTransaction, aor string, current []store.Binding) {
	p := r.p
	if _, err := p.store.DeleteBindings(ctx, aor); err != nil {
		r.storeError(req, tx, err)
		return
	}
	for _, b := range current {
		p.events.publish(Event{Kind: RegistrationRemoved, Time: p.now(), Extension: aor, Contact: b.Contact, Source: req.Source()})
	}
	p.log.Info("registrations removed", "ext", aor, "src", req.Source())
	r.ok(req, tx, nil)
}

// makeRoom applies MaxContacts to the bindings the REGISTER would leave: with
// ContactsReplaceOldest the least recently refreshed other bindings make room (a phone whose NAT
// mapping changed registers a new contact while its old one lingers; ringing the dead one helps
// no one), with ContactsRefuse the REGISTER gets 403. More new contacts in one REGISTER than
// MaxContacts are refused either way.
func (r *registrar) makeRoom(current []store.Binding, updates []contactUpdate) (evict []store.Binding, rej *rejection) {
	max := r.p.cfg.MaxContacts
	remaining := len(current)
	kept := make([]store.Binding, 0, len(current)) // bindings this REGISTER leaves alone
	for _, b := range current {
		if !updatesContact(updates, b.Contact) {
			kept = append(kept, b)
		}
	}
	for _, u := range updates {
		switch exists := hasContact(current, u.uri); {
		case exists && u.expires == 0:
			remaining--
		case !exists && u.expires > 0:
			remaining++
		}
	}
	over := remaining - max
	if over <= 0 {
		return nil, nil
	}
	if r.p.cfg.ContactsFull == ContactsRefuse || over > len(kept) {
		return nil, reject(403, "at most %d contacts per extension", max)
	}
	slices.SortFunc(kept, func(a, b store.Binding) int { return a.UpdatedAt.Compare(b.UpdatedAt) })
	return kept[:over], nil
}

// hasContact reports whether contact is among the bindings.
func hasContact(bs []store.Binding, contact string) bool {
	for _, b := range bs {
		if b.Contact == contact {
			return true
		}
	}
	return false
}

// apply writes a REGISTER's updates and evictions and returns the bindings left.
func (r *registrar) apply(ctx context.Context, req *sip.Request, aor string, current []store.Binding, updates []contactUpdate, evict []store.Binding) ([]store.Binding, error) {
	p := r.p
	byURI := make(map[string]store.Binding, len(current))
	for _, b := range current {
		byURI[b.Contact] = b
	}
	now := p.now()
	for _, b := range evict {
		if err := p.store.DeleteBinding(ctx, aor, b.Contact); err != nil {
			return nil, err
		}
		delete(byURI, b.Contact)
		p.events.publish(Event{Kind: RegistrationRemoved, Time: now, Extension: aor, Contact: b.Contact, Source: req.Source()})
		p.log.Info("registration replaced: contact limit", "ext", aor, "contact", b.Contact, "by_src", req.Source())
	}
	ua := ""
	if h := req.GetHeader("User-Agent"); h != nil {
		ua = h.Value()
	}
	for _, u := range updates {
		ev := Event{Time: now, Extension: aor, Contact: u.uri, Source: req.Source(), Expires: u.expires}
		_, existed := byURI[u.uri]
		var err error
		switch {
		case u.expires == 0:
			ev.Kind = RegistrationRemoved
			err = p.store.DeleteBinding(ctx, aor, u.uri)
			delete(byURI, u.uri)
		default:
			ev.Kind = RegistrationAdded
			if existed {
				ev.Kind = RegistrationRefreshed
			}
			b := store.Binding{
				Extension: aor, Contact: u.uri, Source: req.Source(), Transport: strings.ToLower(req.Transport()),
				ExpiresAt: now.Add(u.expires), CallID: req.CallID().Value(), CSeq: req.CSeq().SeqNo, UserAgent: ua, Q: u.q,
				NodeID: p.cfg.NodeID, UpdatedAt: now,
			}
			err = p.store.PutBinding(ctx, b)
			byURI[u.uri] = b
		}
		if err != nil {
			return nil, err
		}
		if ev.Kind != RegistrationRemoved || existed {
			p.events.publish(ev)
		}
	}
	if len(updates) > 0 {
		p.log.Info("registered", "ext", aor, "src", req.Source(), "contacts", len(updates))
	}
	// The bindings read under this extension's lock plus the changes just written are the
	// current set; reading them back would only cost a database round trip (the writes
	// invalidated the cache).
	live := make([]store.Binding, 0, len(byURI))
	for _, b := range byURI {
		live = append(live, b)
	}
	return live, nil
}

// parseContacts reads the Contact headers and expiry of a REGISTER. A lone "*" with Expires 0 asks
// to remove every binding (RFC 3261 §10.2.2); no Contact at all is a query.
func (r *registrar) parseContacts(req *sip.Request) ([]contactUpdate, bool, *rejection) {
	cfg := r.p.cfg
	expiresHdr := -1
	if h := req.GetHeader("Expires"); h != nil {
		n, err := strconv.ParseUint(strings.TrimSpace(h.Value()), 10, 32)
		if err != nil {
			return nil, false, reject(400, "Expires must be a number of seconds")
		}
		expiresHdr = int(min(n, 1<<31-1))
	}
	var contacts []*sip.ContactHeader
	for _, h := range req.GetHeaders("Contact") {
		c, ok := h.(*sip.ContactHeader)
		if !ok {
			return nil, false, reject(400, "malformed Contact header")
		}
		contacts = append(contacts, c)
	}
	for _, c := range contacts {
		if c.Address.Wildcard {
			if len(contacts) != 1 || expiresHdr != 0 {
				return nil, false, reject(400, "Contact * needs Expires: 0 and no other Contact")
			}
			return nil, true, nil
		}
	}
	var out []contactUpdate
	seen := map[string]bool{}
	for _, c := range contacts {
		if s := strings.ToLower(c.Address.Scheme); s != "sip" && s != "sips" {
			return nil, false, reject(400, "Contact must be a sip: or sips: URI")
		}
		exp := expiresHdr
		if v, ok := c.Params.Get("expires"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			if err != nil {
				return nil, false, reject(400, "Contact expires must be a number of seconds")
			}
			exp = int(min(n, 1<<31-1))
		}
		d := cfg.DefaultExpires
		if exp >= 0 {
			d = time.Duration(exp) * time.Second
		}
		if d > 0 && d < cfg.MinExpires {
			return nil, false, &rejection{code: 423, warning: "registration interval too brief",
				headers: []sip.Header{sip.NewHeader("Min-Expires", strconv.Itoa(int(cfg.MinExpires/time.Second)))}}
		}
		d = min(d, cfg.MaxExpires)
		q := 0.0
		if v, ok := c.Params.Get("q"); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > 1 {
				return nil, false, reject(400, "Contact q must lie between 0 and 1")
			}
			q = f
		}
		uri := c.Address.String()
		if seen[uri] {
			continue
		}
		seen[uri] = true
		out = append(out, contactUpdate{uri: uri, expires: d, q: q})
	}
	return out, false, nil
}

// ok sends 200 listing every current binding with its remaining time (RFC 3261 §10.3 step 8).
func (r *registrar) ok(req *sip.Request, tx sip.ServerTransaction, live []store.Binding) {
	now := r.p.now()
	hs := make([]sip.Header, 0, len(live)+1)
	for _, b := range live {
		secs := int((b.ExpiresAt.Sub(now) + time.Second - 1) / time.Second)
		hs = append(hs, sip.NewHeader("Contact", fmt.Sprintf("<%s>;expires=%d", b.Contact, max(secs, 0))))
	}
	hs = append(hs, sip.NewHeader("Date", now.UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT")))
	r.p.reply(req, tx, 200, "", hs...)
}

func (r *registrar) storeError(req *sip.Request, tx sip.ServerTransaction, err error) {
	r.p.replyStoreError(req, tx, "registrar", err)
}

// dropUnreachable removes the registration of a contact the call core could not reach over its
// connection (RFC 5626's flow failure, without its machinery): a phone registered over TCP that
// has gone away would otherwise be rung, and fail, on every call until its registration expires.
// It runs in the background: the call core must not wait for the database.
func (p *PBX) dropUnreachable(t b2bua.Target, cause error) {
	if t.Ext == "" || t.Dest == "" {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		bindings, err := p.store.Bindings(ctx, t.Ext)
		if err != nil {
			p.log.Warn("unreachable contact not removed", "ext", t.Ext, "dest", t.Dest, "error", err)
			return
		}
		for _, b := range bindings {
			if b.Source != t.Dest || !strings.EqualFold(b.Transport, t.Transport) {
				continue
			}
			if b.NodeID != "" && b.NodeID != p.cfg.NodeID {
				// Another node holds this phone's connection: this node failing to reach it
				// says nothing of that connection.
				continue
			}
			if err := p.store.DeleteBinding(ctx, t.Ext, b.Contact); err != nil {
				p.log.Warn("unreachable contact not removed", "ext", t.Ext, "contact", b.Contact, "error", err)
				continue
			}
			p.log.Warn("registration removed: its connection failed", "ext", t.Ext, "contact", b.Contact,
				"transport", b.Transport, "error", cause)
		}
	}()
}
