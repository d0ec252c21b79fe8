package pbx

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"net/netip"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/internal/sipx"
	"github.com/pbxkit/pbxkit/store"
)

// knownMethods are the methods of RFC 3261 and its extensions that pbxkit recognises: a request
// with one of them that pbxkit does not serve (sipx.Allow) gets 405 with Allow; any other method
// gets 501.
var knownMethods = []sip.RequestMethod{
	sip.INVITE, sip.ACK, sip.CANCEL, sip.BYE, sip.OPTIONS, sip.REGISTER, sip.INFO, sip.UPDATE,
	sip.PRACK, sip.SUBSCRIBE, sip.NOTIFY, sip.PUBLISH, sip.MESSAGE, sip.REFER,
}

// supportedTags are the option tags pbxkit implements (Require: anything else gets 420): "timer",
// session timers (RFC 4028), pass through the call core.
var supportedTags = map[string]bool{"timer": true}

// supportedValue is the Supported header value.
func supportedValue() string {
	return strings.Join(slices.Sorted(maps.Keys(supportedTags)), ", ")
}

// rejection is a front-door answer: a status, a Warning text saying why, and extra headers.
type rejection struct {
	code    int
	warning string
	headers []sip.Header
}

func reject(code int, format string, args ...any) *rejection {
	return &rejection{code: code, warning: fmt.Sprintf(format, args...)}
}

// singleValued are header fields that may appear only once (RFC 3261 §7.3.1, §20).
var singleValued = []string{"From", "To", "Call-ID", "CSeq", "Max-Forwards", "Content-Length", "Content-Type", "Expires"}

// validate checks a parsed request before any logic, in the order of RFC 3261 §8.2: syntax (400,
// 505, 416, 414, 413), method (501, 405), loops (482, 483), extensions (420), content (415, 406).
func (p *PBX) validate(req *sip.Request) *rejection {
	if r := p.validateSyntax(req); r != nil {
		return r
	}
	if r := p.validateMethod(req); r != nil {
		return r
	}
	if req.Method == sip.ACK || req.Method == sip.CANCEL {
		return nil // never challenged, never checked for extensions (RFC 3261 §8.2.2.3)
	}
	return p.validateHandling(req)
}

// validateSyntax checks the request's syntax and size: 505, 400, 416, 414, 413.
func (p *PBX) validateSyntax(req *sip.Request) *rejection {
	if req.SipVersion != "SIP/2.0" {
		return reject(505, "only SIP/2.0 is supported")
	}
	for _, h := range []string{"Via", "From", "To", "Call-ID", "CSeq"} {
		if req.GetHeader(h) == nil {
			return reject(400, "missing %s header", h)
		}
	}
	for _, h := range singleValued {
		if len(req.GetHeaders(h)) > 1 {
			return reject(400, "duplicate %s header", h)
		}
	}
	cseq := req.CSeq()
	if cseq == nil || req.From() == nil || req.To() == nil || req.CallID() == nil || req.Via() == nil {
		return reject(400, "malformed mandatory header")
	}
	// Methods are case-sensitive (RFC 3261 §7.1), but sipgo upper-cases the request line's method
	// and not the CSeq's, so compare without case.
	if !strings.EqualFold(string(cseq.MethodName), string(req.Method)) {
		return reject(400, "CSeq method %s does not match request method %s", cseq.MethodName, req.Method)
	}
	if cl := req.ContentLength(); cl != nil && int(*cl) != len(req.Body()) {
		return reject(400, "Content-Length %d does not match body of %d bytes", int(*cl), len(req.Body()))
	}
	if b, ok := req.Via().Params.Get("branch"); ok && b == sip.RFC3261BranchMagicCookie {
		return reject(400, "Via branch has no transaction identifier")
	}
	if req.Recipient.Headers.Length() > 0 {
		return reject(400, "Request-URI must not contain headers")
	}
	if !supportedScheme(req.Recipient.Scheme) {
		return &rejection{code: 416, warning: fmt.Sprintf("URI scheme %q is not supported", req.Recipient.Scheme)}
	}
	if p.cfg.MaxURILength > 0 && len(req.Recipient.String()) > p.cfg.MaxURILength {
		return reject(414, "Request-URI longer than %d bytes", p.cfg.MaxURILength)
	}
	if p.cfg.MaxBodyBytes > 0 && len(req.Body()) > p.cfg.MaxBodyBytes {
		return reject(413, "body larger than %d bytes", p.cfg.MaxBodyBytes)
	}
	return nil
}

// validateMethod checks that the method is one the PBX knows and serves (501, 405) and that the
// request has not looped through the PBX already (482).
func (p *PBX) validateMethod(req *sip.Request) *rejection {
	if !isKnown(req.Method) {
		return reject(501, "method %s is not implemented", req.Method)
	}
	if !sipx.Allowed(string(req.Method)) {
		return &rejection{code: 405, warning: fmt.Sprintf("method %s is not served", req.Method),
			headers: []sip.Header{sip.NewHeader("Allow", sipx.Allow)}}
	}
	for _, h := range req.GetHeaders("Via") {
		if v, ok := h.(*sip.ViaHeader); ok {
			if b, _ := v.Params.Get("branch"); strings.HasPrefix(b, p.branchPrefix) {
				return reject(482, "request has already passed this PBX")
			}
		}
	}
	return nil
}

// validateHandling checks what the PBX needs to handle a request other than ACK and CANCEL:
// Max-Forwards (483), required extensions (420), the content (415, 406), and that it is not a
// merged request (482).
func (p *PBX) validateHandling(req *sip.Request) *rejection {
	if mf := req.MaxForwards(); mf != nil && *mf == 0 && req.Method != sip.OPTIONS && req.Method != sip.REGISTER {
		// OPTIONS and REGISTER end here, so the PBX answers them as a UAS would (RFC 4475 §3.3.11).
		return reject(483, "Max-Forwards is 0")
	}
	if unknown := unsupportedTags(req); len(unknown) > 0 {
		return &rejection{code: 420, warning: "unsupported extension required",
			headers: []sip.Header{sip.NewHeader("Unsupported", strings.Join(unknown, ", "))}}
	}
	if req.Method == sip.INVITE && len(req.Body()) > 0 {
		ct := req.ContentType()
		if ct == nil || !sipx.IsSDP(ct.Value()) {
			return &rejection{code: 415, warning: "INVITE body must be application/sdp",
				headers: []sip.Header{sip.NewHeader("Accept", sipx.ContentTypeSDP)}}
		}
	}
	if req.Method == sip.INVITE && !accepts(req, sipx.ContentTypeSDP) {
		return &rejection{code: 406, warning: "responses carry application/sdp, which Accept excludes",
			headers: []sip.Header{sip.NewHeader("Accept", sipx.ContentTypeSDP)}}
	}
	if p.merged.seen(req, p.now()) {
		return reject(482, "merged request")
	}
	return nil
}

func isKnown(m sip.RequestMethod) bool {
	for _, k := range knownMethods {
		if k == m {
			return true
		}
	}
	return false
}

// accepts reports whether req's Accept headers admit mediaType; no Accept header means the
// method's or event package's default type, which callers pass (RFC 3261 §20.1: application/sdp
// for INVITE; RFC 6665 §4.1.2 and RFC 4235 §3.4: application/dialog-info+xml for dialog).
func accepts(req *sip.Request, mediaType string) bool {
	hs := req.GetHeaders("Accept")
	if len(hs) == 0 {
		return true
	}
	for _, h := range hs {
		for _, v := range strings.Split(h.Value(), ",") {
			mt, _, _ := strings.Cut(v, ";")
			switch strings.ToLower(strings.TrimSpace(mt)) {
			case mediaType, "application/*", "*/*", "":
				return true
			}
		}
	}
	return false
}

// unsupportedTags lists the Require and Proxy-Require option tags pbxkit does not implement. The
// PBX is both the caller's UAS and its outbound proxy, so it answers for both headers.
func unsupportedTags(req *sip.Request) []string {
	var out []string
	for _, name := range []string{"Require", "Proxy-Require"} {
		for _, h := range req.GetHeaders(name) {
			for _, t := range strings.Split(h.Value(), ",") {
				t = strings.TrimSpace(t)
				if t != "" && !supportedTags[strings.ToLower(t)] {
					out = append(out, t)
				}
			}
		}
	}
	return out
}

// mergeTracker finds merged requests (RFC 3261 §8.2.2.2): an initial request whose From tag,
// Call-ID and CSeq match one in progress but that arrived by another path (another branch), as
// happens when a forking proxy upstream sends the same INVITE twice.
type mergeTracker struct {
	mu    sync.Mutex
	items map[uint64]uint64 // hash of Call-ID, From tag and CSeq -> hash of the top Via branch
	exp   []mergeExpiry
}

// The tracker keeps hashes, not strings: it remembers every INVITE for 32 s, and a substring of
// a parsed message would keep the whole message.
type mergeExpiry struct {
	key uint64
	at  time.Time
}

// mergeSeed keys the tracker's hashes for the process (64 bits: a collision, which would answer
// one INVITE 482, is not a case to plan for).
var mergeSeed = maphash.MakeSeed()

// mergeWindow is how long an INVITE counts as in progress for merge detection: 64*T1, the
// lifetime of its server transaction.
const mergeWindow = 32 * time.Second

func (m *mergeTracker) seen(req *sip.Request, now time.Time) bool {
	if req.Method != sip.INVITE {
		return false
	}
	if _, hasTag := req.To().Params.Get("tag"); hasTag {
		return false
	}
	ftag, _ := req.From().Params.Get("tag")
	branchValue, _ := req.Via().Params.Get("branch")
	branch := maphash.String(mergeSeed, branchValue)
	key := maphash.String(mergeSeed, req.CallID().Value()+"\x00"+ftag+"\x00"+strconv.FormatUint(uint64(req.CSeq().SeqNo), 10))
	m.mu.Lock()
	defer m.mu.Unlock()
	for len(m.exp) > 0 && now.After(m.exp[0].at) {
		delete(m.items, m.exp[0].key)
		m.exp = m.exp[1:]
	}
	if b, ok := m.items[key]; ok {
		return b != branch
	}
	if m.items == nil {
		m.items = map[uint64]uint64{}
	}
	m.items[key] = branch
	m.exp = append(m.exp, mergeExpiry{key: key, at: now.Add(mergeWindow)})
	return false
}

// handle is the single entry point for every request sipgo delivers.
func (p *PBX) handle(req *sip.Request, tx sip.ServerTransaction) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("panic handling request", "method", string(req.Method), "src", req.Source(), "panic", r, "stack", string(debug.Stack()))
			if !req.IsAck() {
				p.reply(req, tx, 500, "internal error")
			}
		}
	}()
	p.metrics.requests.WithLabelValues(methodLabel(req.Method)).Inc()
	p.log.Debug("sip request", "method", string(req.Method), "transport", req.Transport(), "src", req.Source())
	if rej := p.validate(req); rej != nil {
		if req.IsAck() {
			p.badInput.info("invalid ACK dropped", "src", req.Source(), "reason", rej.warning)
			return
		}
		p.log.Debug("request rejected", "method", string(req.Method), "src", req.Source(), "status", rej.code, "reason", rej.warning)
		p.reply(req, tx, rej.code, rej.warning, rej.headers...)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, inDialog := req.To().Params.Get("tag")
	if inDialog && p.calls.HandleInDialog(req, tx) {
		return
	}
	switch req.Method {
	case sip.OPTIONS:
		if inDialog {
			p.reply(req, tx, 481, "no such dialog")
			return
		}
		p.reply(req, tx, 200, "",
			sip.NewHeader("Allow", sipx.Allow),
			sip.NewHeader("Accept", sipx.ContentTypeSDP),
			sip.NewHeader("Supported", supportedValue()),
			sip.NewHeader("Allow-Events", p.allowEvents())) // RFC 6665 §4.4.4
	case sip.REGISTER:
		p.reg.handle(ctx, req, tx)
	case sip.SUBSCRIBE:
		p.handleSubscribe(ctx, req, tx, inDialog)
	case sip.INVITE:
		if inDialog {
			p.reply(req, tx, 481, "no such dialog")
			return
		}
		if ip, ok := sourceIP(req); ok {
			if t := p.trunks.bySource(ip); t != nil {
				p.trunkCall(req, tx, t) // a provider's call: its address is its credential
				return
			}
		}
		if feature, number, ok := p.peerFeature(req); ok {
			// Another node's (signed, or from a trusted source): no password (clustercalls.go).
			p.routeFeature(req, tx, feature, number)
			return
		}
		ext, ok := p.authorize(ctx, req, tx, true)
		if !ok {
			return
		}
		p.routeInvite(req, tx, ext)
	case sip.ACK:
		// An ACK that matched no transaction acknowledges a 2xx of a dialog this PBX does not
		// have: nothing to answer (ACK never gets a response).
		p.log.Debug("stray ACK dropped", "src", req.Source(), "call_id", req.CallID().Value())
	case sip.CANCEL:
		// sipgo answers CANCELs that match an INVITE transaction itself; this one matched none.
		p.reply(req, tx, 481, "no matching transaction")
	default: // BYE, INFO, UPDATE, REFER, NOTIFY: served only inside a call's dialog.
		p.reply(req, tx, 481, "no such dialog")
	}
}

func methodLabel(m sip.RequestMethod) string {
	if isKnown(m) {
		return string(m)
	}
	return "other"
}

// reply answers req with code and IANA reason phrase; warning, when set, goes into a Warning
// header (RFC 3261 §20.43) so the caller sees why.
func (p *PBX) reply(req *sip.Request, tx sip.ServerTransaction, code int, warning string, hdrs ...sip.Header) {
	p.send(req, tx, p.response(req, code, warning, hdrs...))
}

// response builds reply's answer, for a caller that adds to it before sending it.
func (p *PBX) response(req *sip.Request, code int, warning string, hdrs ...sip.Header) *sip.Response {
	res := sip.NewResponseFromRequest(req, code, sipx.Reason(code), nil)
	res.SipVersion = "SIP/2.0" // never echo another version, even in a 505
	res.AppendHeader(sip.NewHeader("Server", p.cfg.UserAgent))
	if warning != "" && code >= 300 {
		res.AppendHeader(sip.NewHeader("Warning", p.warning(warning)))
	}
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	return res
}

// send sends a response to req in its transaction (statelessly without one) and counts it.
func (p *PBX) send(req *sip.Request, tx sip.ServerTransaction, res *sip.Response) {
	var err error
	if tx != nil {
		err = tx.Respond(res)
	} else {
		err = p.srv.WriteResponse(res)
	}
	if err != nil {
		p.log.Warn("sending response", "status", res.StatusCode, "method", string(req.Method), "src", req.Source(), "error", err)
		return
	}
	p.metrics.response(res.StatusCode)
}

// replyStoreError answers a request whose handling failed in the store: 404 for a missing
// extension, 503 with Retry-After when the database does not answer, 500 otherwise.
func (p *PBX) replyStoreError(req *sip.Request, tx sip.ServerTransaction, what string, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		p.reply(req, tx, 404, "no such extension")
	case errors.Is(err, store.ErrUnavailable):
		p.log.Error(what+": database unavailable", "error", err)
		p.reply(req, tx, 503, "database unavailable", sip.NewHeader("Retry-After", "5"))
	default:
		p.log.Error(what+": store", "error", err)
		p.reply(req, tx, 500, "")
	}
}

// warning formats a Warning header value: code 399 (miscellaneous), the PBX's domain as agent, and
// text made safe for a quoted string.
func (p *PBX) warning(text string) string {
	var b strings.Builder
	for _, r := range text {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\'')
		case r < 0x20 || r == 0x7f:
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
		if b.Len() > 200 {
			break
		}
	}
	return fmt.Sprintf("399 %s \"%s\"", p.cfg.Domain, b.String())
}

// sourceIP returns the IP a request came from.
func sourceIP(req *sip.Request) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}
