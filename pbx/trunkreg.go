package pbx

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/internal/sipx"
	"github.com/pbxkit/pbxkit/store"
)

// Registration at a trunk's provider (RFC 3261 §10.2): one goroutine per trunk with --register.
// It registers, answers the provider's 401/407 with digest, refreshes at three quarters of the
// time granted, and after a failure tries again after TrunkRetryMin, doubling up to TrunkRetryMax
// (with jitter, RFC 5626 §4.5). Shutdown, or the trunk's removal or change, unregisters it
// (Expires: 0). Each change of state is logged and kept in the store for `officepbx trunk list`.

// Trunk registration states, as TrunkStatus and the store give them.
const (
	TrunkRegistering = "registering"
	TrunkRegistered  = "registered"
	TrunkFailed      = "failed"
	TrunkStopped     = "unregistered"
)

// TrunkStatus is what the PBX knows of a trunk's registration.
type TrunkStatus struct {
	Trunk  string
	State  string    // TrunkRegistering, TrunkRegistered, TrunkFailed or TrunkStopped
	Detail string    // why it failed, or how long it was granted
	Until  time.Time // registered: when it expires; failed: when it is tried again
}

// trunkReg is one trunk's registration loop.
type trunkReg struct {
	tt     *trunkTable
	t      *trunk
	key    string
	cancel context.CancelFunc
	done   chan struct{}

	callID, fromTag string
	cseq            uint32
	registered      bool
}

// unregisterWait bounds the REGISTER with Expires: 0 sent when a registration stops.
const unregisterWait = time.Second

// reconcile starts a registration for each trunk that wants one and has none (or one made with
// other settings), and stops those of trunks gone or changed; with several nodes, only of the
// trunks this node registers (trunkclaims.go). It runs on the trunk loop only.
func (tt *trunkTable) reconcile(list []*trunk) {
	want := map[string]*trunk{}
	for _, t := range list {
		if t.Register {
			want[t.Name] = t
		}
	}
	tt.mine(want)
	var stop []*trunkReg
	var released []string
	tt.mu.Lock()
	for name, r := range tt.regs {
		if t, ok := want[name]; !ok || t.regKey() != r.key {
			stop = append(stop, r)
			delete(tt.regs, name)
			if !ok {
				released = append(released, name)
			}
		}
	}
	tt.mu.Unlock()
	for _, r := range stop {
		r.stop()
	}
	tt.release(released)
	for name, t := range want {
		tt.mu.Lock()
		_, running := tt.regs[name]
		tt.mu.Unlock()
		if !running {
			tt.start(t)
		}
	}
}

// start begins t's registration loop.
func (tt *trunkTable) start(t *trunk) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &trunkReg{tt: tt, t: t, key: t.regKey(), cancel: cancel, done: make(chan struct{}),
		callID: sip.GenerateTagN(24) + "@pbxkit", fromTag: sip.GenerateTagN(16)}
	tt.mu.Lock()
	tt.regs[t.Name] = r
	tt.mu.Unlock()
	go r.run(ctx)
}

// stopAll stops every registration and waits for them.
func (tt *trunkTable) stopAll() {
	tt.mu.Lock()
	regs := tt.regs
	tt.regs = map[string]*trunkReg{}
	tt.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range regs {
		wg.Go(r.stop)
	}
	wg.Wait()
}

// stop ends the loop (which unregisters) and waits for it.
func (r *trunkReg) stop() {
	r.cancel()
	<-r.done
}

// run registers until ctx ends, then unregisters.
func (r *trunkReg) run(ctx context.Context) {
	defer close(r.done)
	defer func() {
		if v := recover(); v != nil {
			r.tt.log.Error("panic in trunk registration", "trunk", r.t.Name, "panic", v, "stack", string(debug.Stack()))
		}
	}()
	cfg := r.tt.p.cfg
	fails := 0
	for {
		r.tt.setState(r.t.Name, TrunkRegistering, "", time.Time{})
		granted, err := r.register(ctx, cfg.TrunkExpires)
		var wait time.Duration
		switch {
		case ctx.Err() != nil:
			r.unregister()
			return
		case err != nil:
			fails++
			wait = backoff(cfg.TrunkRetryMin, cfg.TrunkRetryMax, fails)
			r.registered = false
			r.tt.setState(r.t.Name, TrunkFailed, err.Error(), time.Now().Add(wait))
		default:
			fails, r.registered = 0, true
			wait = max(granted*3/4, 500*time.Millisecond)
			r.tt.setState(r.t.Name, TrunkRegistered, "granted "+granted.String(), time.Now().Add(granted))
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			r.unregister()
			return
		case <-timer.C:
		}
	}
}

// backoff is the wait before attempt fails+1: lo doubled per failure up to hi, then a random
// 50-100% of it.
func backoff(lo, hi time.Duration, fails int) time.Duration {
	d := lo
	for i := 1; i < fails && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + rand.N(d/2+1)
}

// unregister removes the registration at the provider (Expires: 0), if there is one.
func (r *trunkReg) unregister() {
	if !r.registered {
		r.tt.setState(r.t.Name, TrunkStopped, "", time.Time{})
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), unregisterWait)
	defer cancel()
	if _, err := r.register(ctx, 0); err != nil {
		r.tt.log.Info("trunk not unregistered", "trunk", r.t.Name, "error", err)
	}
	r.registered = false
	r.tt.setState(r.t.Name, TrunkStopped, "", time.Time{})
}

// register sends one REGISTER asking for expires seconds, answering one challenge and one 423,
// and returns the time granted.
func (r *trunkReg) register(ctx context.Context, expires time.Duration) (time.Duration, error) {
	req, err := r.request(expires)
	if err != nil {
		return 0, err
	}
	res, err := r.do(ctx, req)
	for tries := 0; err == nil && tries < 2; tries++ {
		switch res.StatusCode {
		case 401, 407:
			if tries > 0 || req.GetHeader("Authorization") != nil || req.GetHeader("Proxy-Authorization") != nil {
				return 0, fmt.Errorf("%d %s: credentials refused", res.StatusCode, reason(res))
			}
			if err := sipx.Authorize(req, res, r.t.Username, r.t.Password); err != nil {
				return 0, fmt.Errorf("%d %s: %w", res.StatusCode, reason(res), err)
			}
		case 423: // RFC 3261 §10.2.8: ask again for at least Min-Expires
			minExp, ok := headerSeconds(res, "Min-Expires")
			if !ok || minExp <= expires {
				return 0, fmt.Errorf("423 %s without a usable Min-Expires", reason(res))
			}
			expires = minExp
			setExpires(req, expires)
		default:
			return r.granted(res, expires)
		}
		r.next(req)
		res, err = r.do(ctx, req)
	}
	if err != nil {
		return 0, err
	}
	return r.granted(res, expires)
}

// granted reads the time a 2xx granted: the expires parameter of our Contact, else the Expires
// header, else what was asked.
func (r *trunkReg) granted(res *sip.Response, asked time.Duration) (time.Duration, error) {
	if !res.IsSuccess() {
		return 0, fmt.Errorf("%d %s", res.StatusCode, reason(res))
	}
	for _, h := range res.GetHeaders("Contact") {
		ch, ok := h.(*sip.ContactHeader)
		if !ok || ch.Address.User != r.t.Username {
			continue
		}
		if v, ok := ch.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				return time.Duration(n) * time.Second, nil
			}
		}
	}
	if d, ok := headerSeconds(res, "Expires"); ok {
		return d, nil
	}
	return asked, nil
}

// reason is a response's reason phrase, or the IANA one when it has none.
func reason(res *sip.Response) string {
	if res.Reason != "" {
		return res.Reason
	}
	return sipx.Reason(res.StatusCode)
}

// headerSeconds reads a header holding a number of seconds.
func headerSeconds(m *sip.Response, name string) (time.Duration, bool) {
	h := m.GetHeader(name)
	if h == nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(h.Value()))
	if err != nil || n < 0 {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}

// errNoAnswer is a REGISTER transaction that ended without a final answer.
var errNoAnswer = errors.New("no answer from the provider")

// do sends req in a transaction and waits for its final answer.
func (r *trunkReg) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, 64*sip.T1)
	defer cancel()
	tx, err := r.tt.p.trunkClient.TransactionRequest(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if !res.IsProvisional() {
				return res, nil
			}
		case <-tx.Done():
			if err := tx.Err(); err != nil {
				return nil, fmt.Errorf("%w: %w", errNoAnswer, err)
			}
			return nil, errNoAnswer
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", errNoAnswer, ctx.Err())
		}
	}
}

// request builds a REGISTER for the trunk's account (RFC 3261 §10.2): To and From its
// address-of-record at the provider, the PBX's address as Contact.
func (r *trunkReg) request(expires time.Duration) (*sip.Request, error) {
	t := r.t
	self, err := r.tt.p.localAddrToward(t.dest())
	if err != nil {
		return nil, err
	}
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: t.host, Port: t.port})
	req.SetTransport("UDP")
	req.SetDestination(t.dest())
	req.AppendHeader(r.via(self))
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	aor := sip.Uri{Scheme: "sip", User: t.Username, Host: t.host}
	from := &sip.FromHeader{Address: aor}
	from.Params.Add("tag", r.fromTag)
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: aor})
	cid := sip.CallIDHeader(r.callID)
	req.AppendHeader(&cid)
	r.cseq++
	req.AppendHeader(&sip.CSeqHeader{SeqNo: r.cseq, MethodName: sip.REGISTER})
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: t.Username, Host: self.IP.String(), Port: self.Port}})
	req.AppendHeader(sip.NewHeader("User-Agent", r.tt.p.cfg.UserAgent))
	req.AppendHeader(sip.NewHeader("Allow", sipx.Allow))
	setExpires(req, expires)
	req.SetBody(nil)
	return req, nil
}

// next readies req to be sent again: a new branch, the next CSeq.
func (r *trunkReg) next(req *sip.Request) {
	r.cseq++
	req.CSeq().SeqNo = r.cseq
	via := req.Via()
	req.RemoveHeader("Via")
	req.PrependHeader(r.via(&net.UDPAddr{IP: net.ParseIP(via.Host), Port: via.Port}))
}

// via is the PBX's Via for a REGISTER, with a new branch carrying the PBX's prefix.
func (r *trunkReg) via(self *net.UDPAddr) *sip.ViaHeader {
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: self.IP.String(), Port: self.Port}
	via.Params.Add("branch", r.tt.p.branchPrefix+sip.GenerateTagN(16))
	via.Params.Add("rport", "")
	return via
}

func setExpires(req *sip.Request, expires time.Duration) {
	req.RemoveHeader("Expires")
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
}

// localAddrToward is the PBX's UDP address as dest sees it: the listening address, or, when
// that is unspecified (0.0.0.0), the local address the system routes toward dest from.
func (p *PBX) localAddrToward(dest string) (*net.UDPAddr, error) {
	self := *p.UDPAddr()
	if p.cfg.ExternalIP != "" {
		// Behind NAT: the provider answers and calls the public address, forwarded to this one.
		self.IP = net.ParseIP(p.cfg.ExternalIP)
		return &self, nil
	}
	if !self.IP.IsUnspecified() {
		return &self, nil
	}
	c, err := net.Dial("udp", dest)
	if err != nil {
		return nil, fmt.Errorf("no route toward %s: %w", dest, err)
	}
	defer c.Close()
	self.IP = c.LocalAddr().(*net.UDPAddr).IP
	return &self, nil
}

// setState records a registration's state: in memory, in a log line when it changed, in the
// store.
func (tt *trunkTable) setState(name, state, detail string, until time.Time) {
	tt.mu.Lock()
	prev := tt.status[name]
	tt.status[name] = TrunkStatus{Trunk: name, State: state, Detail: detail, Until: until}
	tt.mu.Unlock()
	switch {
	case state == TrunkRegistered:
		tt.log.Info("trunk registered", "trunk", name, "detail", detail, "until", until.Format(time.RFC3339))
	case state == TrunkFailed:
		tt.log.Warn("trunk registration failed", "trunk", name, "error", detail, "retry_in", time.Until(until).Round(time.Millisecond))
	case state != prev.State && state == TrunkStopped:
		tt.log.Info("trunk unregistered", "trunk", name)
	}
	if state == TrunkRegistering {
		return // only outcomes are kept
	}
	if td, ok := tt.p.store.(store.TrunkDirectory); ok {
		if state == TrunkRegistered {
			detail = "until " + until.Format(time.RFC3339)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := td.SetTrunkState(ctx, name, state, detail); err != nil {
			tt.log.Debug("trunk state not stored", "trunk", name, "error", err)
		}
	}
}

// TrunkStatus returns what the PBX knows of the named trunk's registration (State "" when it
// does not register).
func (p *PBX) TrunkStatus(name string) TrunkStatus {
	p.trunks.mu.Lock()
	defer p.trunks.mu.Unlock()
	return p.trunks.status[name]
}
