package pbx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Reasons a subscription ends with (Subscription-State: terminated;reason=..., RFC 6665 §4.1.3).
const (
	reasonTimeout  = "timeout"   // expired without refresh, or unsubscribed (Expires: 0)
	reasonShutdown = "probation" // the PBX stops: subscribe again later (with retry-after)
)

// shutdownRetryAfter is the retry-after of the final NOTIFY at shutdown: long enough for a
// restart.
const shutdownRetryAfter = 30

// finalNotifyWait bounds the wait for the answer to the final NOTIFY at shutdown.
const finalNotifyWait = 2 * time.Second

// subscription is one watcher's subscription to one extension's dialogs (busy lamp) or mailbox
// (message-waiting lamp, mwi.go): the dialog its SUBSCRIBE created, with the PBX as notifier
// (RFC 6665 §4.2). One goroutine (run) sends its NOTIFYs in order, one at a time (§4.2.2 forbids
// overlapping them), and ends with it: no goroutine or timer outlives a subscription.
type subscription struct {
	pr      *presence
	key     string // dialog key: Call-ID, local (PBX) tag, remote tag
	ext     string // the extension watched
	pkg     string // the event package: EventPackageDialog or EventPackageMessageSummary
	src     netip.Addr
	counted bool   // counted toward MaxSubscriptionsPerSource
	event   string // the Event header value of NOTIFYs: "dialog", with the SUBSCRIBE's id
	log     *slog.Logger

	// The dialog (RFC 3261 §12.1.1: the PBX is its UAS).
	callID              string
	localURI, remoteURI sip.Uri
	localTag, remoteTag string
	routes              []sip.Header // from the SUBSCRIBE's Record-Route, in order
	transport           string       // the SUBSCRIBE's
	contact             *sip.ContactHeader

	wake chan struct{} // capacity 1: something changed

	// lastBody is the last message-summary body sent; only run's goroutine uses it.
	lastBody []byte

	mu      sync.Mutex
	cseq    uint32
	version uint32
	ended   []dialogState // dialogs terminated since the last NOTIFY
	target  sip.Uri       // the watcher's Contact: Request-URI of NOTIFYs
	dest    string        // where the last SUBSCRIBE came from: NOTIFYs go there (RFC 3581)
	expires time.Time
	end     string // set when the subscription ends: the reason of its final NOTIFY
	// forced: the next NOTIFY is sent even when its message summary did not change (the first
	// one, and the one after a refresh, RFC 6665 §4.2.1.2).
	forced bool
}

// poke notes a change (and a dialog that ended, if any) and wakes the goroutine.
func (s *subscription) poke(ended *dialogState) {
	s.mu.Lock()
	if ended != nil {
		s.ended = append(s.ended, *ended)
	}
	s.mu.Unlock()
	s.signal()
}

func (s *subscription) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// refresh sets a new expiry (RFC 6665 §4.2.1.2) and has the current state sent. SUBSCRIBE is a
// target refresh request (RFC 6665 §4.1.2.1): a Contact in it replaces the remote target, and the
// source it came from becomes where NOTIFYs go (a NAT binding may have changed). It reports false
// when the subscription is already ending.
func (s *subscription) refresh(expires time.Time, target *sip.ContactHeader, dest string) bool {
	s.mu.Lock()
	ok := s.end == ""
	if ok {
		s.forced = true
		s.expires = expires
		if target != nil {
			s.target = *target.Address.Clone()
		}
		s.dest = dest
	}
	s.mu.Unlock()
	s.signal()
	return ok
}

// terminate ends the subscription with a final NOTIFY giving reason.
func (s *subscription) terminate(reason string) {
	s.mu.Lock()
	if s.end == "" {
		s.end = reason
	}
	s.mu.Unlock()
	s.signal()
}

// state returns the end reason ("" while active) and the expiry.
func (s *subscription) state() (string, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.end == "" && !time.Now().Before(s.expires) {
		s.end = reasonTimeout
	}
	return s.end, s.expires
}

// run sends the first NOTIFY at once, then one after each change or refresh, and the final one
// when the subscription ends: unsubscribed, expired, or the PBX shutting down. A watcher that
// answers a NOTIFY with 481 (or not at all) ends it without another.
func (s *subscription) run() {
	defer s.pr.wg.Done()
	defer s.pr.remove(s)
	defer func() {
		// A bug reached by some watcher's answer must not end the process.
		if r := recover(); r != nil {
			s.log.Error("panic in subscription", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		end, expires := s.state()
		if body, contentType, send := s.next(end); send && !s.notify(end, expires, body, contentType) {
			s.log.Info("subscription ended by the watcher", "ext", s.ext)
			return
		}
		if end != "" {
			s.log.Debug("subscription ended", "ext", s.ext, "reason", end)
			return
		}
		timer.Reset(time.Until(expires))
		select {
		case <-s.wake:
		case <-timer.C:
		}
	}
}

// next returns the body of the next NOTIFY, and whether to send it: a busy lamp's NOTIFY goes
// out after every wake-up; a message-waiting lamp's only when its counts moved, or when it must
// (the first, after a refresh, the final one).
func (s *subscription) next(end string) (body []byte, contentType string, send bool) {
	s.mu.Lock()
	forced := s.forced || end != ""
	s.forced = false
	s.mu.Unlock()
	if s.pkg != EventPackageMessageSummary {
		return s.pr.document(s), ContentTypeDialogInfo, true
	}
	if end != "" && s.lastBody != nil {
		return s.lastBody, ContentTypeMessageSummary, true // no query for the final NOTIFY
	}
	body = s.summary()
	if !forced && bytes.Equal(body, s.lastBody) {
		return nil, "", false
	}
	s.lastBody = body
	return body, ContentTypeMessageSummary, true
}

// notify sends one NOTIFY with the current state and waits for its answer. It reports whether
// the watcher still has the subscription.
func (s *subscription) notify(end string, expires time.Time, body []byte, contentType string) bool {
	req := s.request(end, expires, body, contentType)
	client := s.pr.tcp
	if strings.EqualFold(s.transport, "udp") {
		client = s.pr.udp
	}
	ctx, cancel := context.WithTimeout(context.Background(), 64*sip.T1)
	defer cancel()
	tx, err := client.TransactionRequest(ctx, req)
	if err != nil {
		s.log.Info("notify not sent", "ext", s.ext, "dest", req.Destination(), "error", err)
		return false
	}
	defer tx.Terminate()
	quit := s.pr.quit
	if end != "" {
		// The final NOTIFY is waited for a little even at shutdown, so the phone hears of it.
		quit = nil
		var cancelFinal context.CancelFunc
		ctx, cancelFinal = context.WithTimeout(ctx, finalNotifyWait)
		defer cancelFinal()
	}
	res, err := waitFinal(ctx, tx, quit)
	switch {
	case errors.Is(err, errQuit):
		return true // shutting down: the loop sends the final NOTIFY next
	case err != nil:
		s.log.Info("notify unanswered", "ext", s.ext, "dest", req.Destination(), "error", err)
		return false
	case endsSubscription(res.StatusCode):
		s.log.Info("notify refused", "ext", s.ext, "dest", req.Destination(), "status", res.StatusCode)
		return false
	}
	return true
}

var errQuit = errors.New("presence closing")

// waitFinal waits for a client transaction's final answer.
func waitFinal(ctx context.Context, tx sip.ClientTransaction, quit <-chan struct{}) (*sip.Response, error) {
	for {
		select {
		case res := <-tx.Responses():
			if !res.IsProvisional() {
				return res, nil
			}
		case <-tx.Done():
			if err := tx.Err(); err != nil {
				return nil, err
			}
			return nil, errors.New("transaction ended without an answer")
		case <-quit:
			return nil, errQuit
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// endsSubscription says which answers to a NOTIFY end the subscription: 481 (RFC 6665 §4.2.2),
// and those that RFC 5057 §5.1 and §5.2 say end the dialog or its usage. Others (500, 503, 491,
// ...) are transient: the next change is sent as usual.
func endsSubscription(code int) bool {
	switch code {
	case 404, 405, 410, 416, 480, 481, 482, 483, 484, 485, 489, 501, 502, 604:
		return true
	}
	return false
}

// request builds the next NOTIFY in the subscription's dialog (RFC 3261 §12.2.1.1, RFC 6665
// §4.2.2): Request-URI the watcher's Contact, Route from its Record-Route, CSeq one more each time.
func (s *subscription) request(end string, expires time.Time, body []byte, contentType string) *sip.Request {
	s.mu.Lock()
	s.cseq++
	cseq, target, dest := s.cseq, *s.target.Clone(), s.dest
	s.mu.Unlock()
	req := sip.NewRequest(sip.NOTIFY, target)
	req.SetTransport(strings.ToUpper(s.transport))
	req.SetDestination(dest)
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: strings.ToUpper(s.transport),
		Host: s.contact.Address.Host, Port: s.contact.Address.Port}
	via.Params.Add("branch", s.pr.branch+sip.GenerateTagN(16))
	via.Params.Add("rport", "")
	req.AppendHeader(via)
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	from := &sip.FromHeader{Address: *s.localURI.Clone()}
	from.Params.Add("tag", s.localTag)
	req.AppendHeader(from)
	to := &sip.ToHeader{Address: *s.remoteURI.Clone()}
	to.Params.Add("tag", s.remoteTag)
	req.AppendHeader(to)
	cid := sip.CallIDHeader(s.callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: sip.NOTIFY})
	for _, r := range s.routes {
		req.AppendHeader(r)
	}
	req.AppendHeader(s.contact)
	req.AppendHeader(sip.NewHeader("Event", s.event))
	req.AppendHeader(sip.NewHeader("Subscription-State", subscriptionState(end, expires)))
	req.AppendHeader(sip.NewHeader("User-Agent", s.pr.cfg.UserAgent))
	req.AppendHeader(sip.NewHeader("Content-Type", contentType))
	req.SetBody(body)
	return req
}

// subscriptionState is the Subscription-State value (RFC 6665 §8.2.3): active with the seconds
// left, or terminated with a reason.
func subscriptionState(end string, expires time.Time) string {
	switch end {
	case "":
		left := max(int((time.Until(expires)+time.Second-1)/time.Second), 1)
		return fmt.Sprintf("active;expires=%d", left)
	case reasonShutdown:
		return fmt.Sprintf("terminated;reason=%s;retry-after=%d", end, shutdownRetryAfter)
	}
	return "terminated;reason=" + end
}
