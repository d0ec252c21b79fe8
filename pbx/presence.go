package pbx

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/emiago/sipgo"

	"github.com/pbxkit/pbxkit/b2bua"
)

// presence serves busy lamps, and the message-waiting lamps that share their subscriptions
// (mwi.go): it keeps each extension's dialogs as the call core's events
// describe them, and the subscriptions to them (RFC 4235 over RFC 6665; SUBSCRIBE handling in
// subscribe.go, one subscription's NOTIFYs in subscription.go).
//
// Call events arrive on the calls' goroutines: they only update the state under mu and wake the
// subscriptions concerned; no I/O happens under mu and nothing here waits for the network.
type presence struct {
	cfg     Config
	log     *slog.Logger
	trusted func(netip.Addr) bool
	udp     *sipgo.Client // NOTIFYs over UDP: from the PBX's listening socket, through NATs
	tcp     *sipgo.Client // NOTIFYs over TCP: over the watcher's connection
	branch  string        // the PBX's Via branch prefix
	quit    chan struct{} // closed by close: waits for answers give up
	wg      sync.WaitGroup

	// mailboxes serves message-waiting lamps (mwi.go); nil when the store keeps no voicemail.
	mailboxes Mailboxes
	stopWatch func() // ends the store's word of mailbox changes

	// share shows the lamps of calls on other nodes (presenceshare.go); nil without a shared
	// store.
	share *presenceShare

	mu       sync.Mutex
	closed   bool
	calls    map[string]*callMark                  // call ID -> the parties marked busy
	byExt    map[string]map[string]dialogState     // extension -> dialog ID -> state
	remote   map[string][]dialogState              // watched extension -> its dialogs on other nodes
	watchers map[string]map[*subscription]struct{} // watched extension -> its subscriptions
	subs     map[string]*subscription              // dialog key -> subscription
	perIP    map[netip.Addr]int                    // source bucket -> subscriptions counted
}

// callMark remembers which extensions a call marks, so that a later event naming another party
// (a forward, a transfer) ends the dialog of the one before.
type callMark struct {
	id             string // the dialog ID shown in dialog-info
	caller, callee string
	rung           map[string]bool // extensions rung by B-legs that have not stopped ringing
	answered       bool
	slot           string // the park slot the call waits in
}

func newPresence(p *PBX) (*presence, error) {
	udp, err := sipgo.NewClient(p.ua, sipgo.WithClientConnectionAddr(p.udp.LocalAddr().String()))
	if err != nil {
		return nil, fmt.Errorf("pbx: presence: %w", err)
	}
	tcp, err := sipgo.NewClient(p.ua)
	if err != nil {
		return nil, fmt.Errorf("pbx: presence: %w", err)
	}
	pr := &presence{
		cfg: p.cfg, log: p.log.With("component", "presence"), trusted: p.trusted, udp: udp, tcp: tcp,
		branch: p.branchPrefix, quit: make(chan struct{}),
		calls: map[string]*callMark{}, byExt: map[string]map[string]dialogState{}, remote: map[string][]dialogState{},
		watchers: map[string]map[*subscription]struct{}{}, subs: map[string]*subscription{},
		perIP: map[netip.Addr]int{},
	}
	if mb, ok := p.store.(Mailboxes); ok {
		pr.mailboxes = mb
		pr.stopWatch = mb.WatchVoicemail(pr.mailboxChanged)
	}
	return pr, nil
}

// watchKey files a subscription among those woken together: busy lamps by extension (the call
// core's events name it), message-waiting lamps apart (mailboxChanged wakes them).
func (s *subscription) watchKey() string {
	if s.pkg == EventPackageMessageSummary {
		return s.pkg + "\x00" + s.ext
	}
	return s.ext
}

// callEvent updates the dialogs of a call's parties. It must not block: the call core calls it.
func (pr *presence) callEvent(ev b2bua.Event) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	m := pr.calls[ev.CallID]
	if m == nil {
		if ev.Kind == b2bua.CallEnded || ev.Kind == b2bua.CallDTMF {
			return
		}
		m = &callMark{id: randomToken(8)}
		pr.calls[ev.CallID] = m
	}
	switch ev.Kind {
	case b2bua.CallNew:
		pr.mark(m, true, ev.Caller, dialogTrying, ev.Callee)
	case b2bua.CallRinging:
		pr.mark(m, true, ev.Caller, dialogEarly, ev.Callee)
		pr.mark(m, false, ev.Callee, dialogEarly, ev.Caller)
	case b2bua.CallLegRinging:
		pr.ringLeg(m, ev.Leg, ev.Caller)
	case b2bua.CallLegEnded:
		pr.endLeg(m, ev.Leg)
	case b2bua.CallParked:
		pr.park(m, ev)
	case b2bua.CallAnswered, b2bua.CallTransferred, b2bua.CallRetrieved:
		pr.unpark(m)
		m.answered = true
		pr.mark(m, true, ev.Caller, dialogConfirmed, ev.Callee)
		pr.mark(m, false, ev.Callee, dialogConfirmed, ev.Caller)
		for ext := range m.rung {
			pr.endLeg(m, ext)
		}
	case b2bua.CallEnded:
		pr.unpark(m)
		for ext := range m.rung {
			pr.endLeg(m, ext)
		}
		pr.mark(m, true, "", "", "")
		pr.mark(m, false, "", "", "")
		delete(pr.calls, ev.CallID)
	}
}

// park ends the dialog of the side that parked the other and left, and shows the call at its
// park slot: the slot's lamp is on while a call waits there.
func (pr *presence) park(m *callMark, ev b2bua.Event) {
	parkerIsCaller := ev.Side == "caller"
	parked := ev.Caller
	if parkerIsCaller {
		parked = ev.Callee
	}
	pr.mark(m, parkerIsCaller, "", "", "")
	m.slot = ev.Slot
	pr.setDialog(m.slot, dialogState{ID: m.id, Direction: "recipient", State: dialogConfirmed, Peer: parked})
}

// unpark ends the call's dialog at its park slot, if it waits in one.
func (pr *presence) unpark(m *callMark) {
	if m.slot != "" {
		pr.endDialog(m.slot, m.id)
		m.slot = ""
	}
}

// ringLeg shows the call ringing at an extension one of its B-legs rings (every member of a ring
// group or queue, every extension of a fork), beside the callee the call's events name.
func (pr *presence) ringLeg(m *callMark, ext, caller string) {
	if ext == "" || ext == m.callee {
		return
	}
	if m.rung == nil {
		m.rung = map[string]bool{}
	}
	m.rung[ext] = true
	pr.setDialog(ext, dialogState{ID: m.id, Direction: "recipient", State: dialogEarly, Peer: caller})
}

// endLeg ends the ringing an extension's B-leg showed, unless that extension answered.
func (pr *presence) endLeg(m *callMark, ext string) {
	if !m.rung[ext] {
		return
	}
	delete(m.rung, ext)
	if len(m.rung) == 0 {
		m.rung = nil // a held call keeps no empty map
	}
	switch {
	case ext != m.callee:
		pr.endDialog(ext, m.id)
	case !m.answered: // the callee the ringing named stopped ringing: it is no one's side now
		pr.mark(m, false, "", "", "")
	}
}

// mark puts the caller's side (initiator) or the callee's of call m at ext in state; ext ""
// ends that side's dialog. A side that moves to another extension ends the dialog at the old one.
func (pr *presence) mark(m *callMark, initiator bool, ext, state, peer string) {
	side, direction := &m.callee, "recipient"
	if initiator {
		side, direction = &m.caller, "initiator"
	}
	if *side != "" && *side != ext {
		pr.endDialog(*side, m.id)
	}
	*side = ext
	if ext == "" {
		return
	}
	pr.setDialog(ext, dialogState{ID: m.id, Direction: direction, State: state, Peer: peer})
}

// setDialog records d as one of ext's dialogs and wakes its watchers when it changed.
func (pr *presence) setDialog(ext string, d dialogState) {
	dialogs := pr.byExt[ext]
	if dialogs == nil {
		dialogs = map[string]dialogState{}
		pr.byExt[ext] = dialogs
	}
	if dialogs[d.ID] == d {
		return
	}
	dialogs[d.ID] = d
	pr.share.dialogSet(ext, d)
	pr.changed(ext, nil)
}

// endDialog removes a dialog of ext and tells its watchers it terminated.
func (pr *presence) endDialog(ext, id string) {
	d, ok := pr.byExt[ext][id]
	if !ok {
		return
	}
	delete(pr.byExt[ext], id)
	if len(pr.byExt[ext]) == 0 {
		delete(pr.byExt, ext)
	}
	pr.share.dialogEnded(ext, id)
	d.State = dialogTerminated
	pr.changed(ext, &d)
}

// setRemote shows ds, the dialogs of ext on other nodes, to ext's watchers: those gone are
// reported terminated once.
func (pr *presence) setRemote(ext string, ds []dialogState) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if len(pr.watchers[ext]) == 0 {
		delete(pr.remote, ext)
		return
	}
	old := pr.remote[ext]
	if slices.Equal(old, ds) {
		return
	}
	if len(ds) == 0 {
		delete(pr.remote, ext)
	} else {
		pr.remote[ext] = ds
	}
	for _, d := range old {
		if !slices.ContainsFunc(ds, func(n dialogState) bool { return n.ID == d.ID }) {
			d.State = dialogTerminated
			pr.changed(ext, &d)
		}
	}
	pr.changed(ext, nil)
}

// watching reports whether a phone watches ext's dialogs here.
func (pr *presence) watching(ext string) bool {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return len(pr.watchers[ext]) > 0
}

// watchedExtensions lists the extensions whose dialogs phones watch here.
func (pr *presence) watchedExtensions() []string {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	var exts []string
	for key := range pr.watchers {
		if !strings.Contains(key, "\x00") { // message-waiting lamps are filed apart
			exts = append(exts, key)
		}
	}
	return exts
}

// changed wakes the subscriptions watching ext; ended, when set, is a dialog they must report as
// terminated once.
func (pr *presence) changed(ext string, ended *dialogState) {
	for s := range pr.watchers[ext] {
		s.poke(ended)
	}
}

// document renders the next NOTIFY body of s: the extension's live dialogs and those that
// terminated since s's last NOTIFY, with s's next version (RFC 4235 §4.1: one more each time).
func (pr *presence) document(s *subscription) []byte {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	live := pr.byExt[s.ext]
	dialogs := make([]dialogState, 0, len(live)+1)
	s.mu.Lock()
	version := s.version
	s.version++
	remote := pr.remote[s.ext]
	for _, d := range s.ended {
		_, again := live[d.ID]
		if !again && !slices.ContainsFunc(remote, func(r dialogState) bool { return r.ID == d.ID }) {
			dialogs = append(dialogs, d)
		}
	}
	s.ended = nil
	s.mu.Unlock()
	for _, d := range live {
		dialogs = append(dialogs, d)
	}
	dialogs = append(dialogs, remote...)
	return dialogInfoBody(version, s.ext, pr.cfg.Domain, dialogs)
}

// errSubscriptionLimit and errSourceLimit refuse a new subscription (503 and 403).
var (
	errSubscriptionLimit = fmt.Errorf("subscription limit reached")
	errSourceLimit       = fmt.Errorf("subscription limit per source reached")
	errPresenceClosed    = fmt.Errorf("shutting down")
)

// add files a new subscription within the limits.
func (pr *presence) add(s *subscription) error {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	switch {
	case pr.closed:
		return errPresenceClosed
	case pr.cfg.MaxSubscriptions > 0 && len(pr.subs) >= pr.cfg.MaxSubscriptions:
		return errSubscriptionLimit
	}
	if !pr.trusted(s.src) {
		bucket := sourceBucket(s.src)
		if pr.cfg.MaxSubscriptionsPerSource > 0 && pr.perIP[bucket] >= pr.cfg.MaxSubscriptionsPerSource {
			return errSourceLimit
		}
		pr.perIP[bucket]++
		s.counted = true
	}
	pr.subs[s.key] = s
	w := pr.watchers[s.watchKey()]
	if w == nil {
		w = map[*subscription]struct{}{}
		pr.watchers[s.watchKey()] = w
		if s.pkg == EventPackageDialog {
			pr.share.watch(s.ext)
		}
	}
	w[s] = struct{}{}
	pr.wg.Add(1) // for s.run, which the caller starts once it has answered the SUBSCRIBE
	return nil
}

// remove forgets s; its goroutine calls it on the way out.
func (pr *presence) remove(s *subscription) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.subs[s.key] == s {
		delete(pr.subs, s.key)
	}
	delete(pr.watchers[s.watchKey()], s)
	if w, ok := pr.watchers[s.watchKey()]; ok && len(w) == 0 {
		delete(pr.watchers, s.watchKey())
		if s.pkg == EventPackageDialog {
			pr.share.unwatch(s.ext)
			delete(pr.remote, s.ext)
		}
	}
	if s.counted {
		bucket := sourceBucket(s.src)
		if pr.perIP[bucket]--; pr.perIP[bucket] <= 0 {
			delete(pr.perIP, bucket)
		}
	}
}

// lookup finds the subscription of an in-dialog SUBSCRIBE.
func (pr *presence) lookup(key string) *subscription {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.subs[key]
}

// count is the number of subscriptions.
func (pr *presence) count() int {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return len(pr.subs)
}

// close terminates every subscription, each with a final NOTIFY (RFC 6665 §4.2.2: reason
// probation, so phones subscribe again a little later, when the PBX is back), and waits for their
// goroutines, at most until ctx ends. New SUBSCRIBEs get 503 from then on.
func (pr *presence) close(ctx context.Context) error {
	pr.mu.Lock()
	if pr.closed {
		pr.mu.Unlock()
		return nil
	}
	pr.closed = true
	if pr.stopWatch != nil {
		pr.stopWatch()
	}
	for _, s := range pr.subs {
		s.terminate(reasonShutdown)
	}
	pr.mu.Unlock()
	close(pr.quit)
	done := make(chan struct{})
	go func() {
		pr.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("pbx: subscriptions still ending: %w", ctx.Err())
	}
}
