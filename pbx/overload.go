package pbx

import (
	"math/rand/v2"
	"net"
	"net/netip"
	rtmetrics "runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/pbxkit/pbxkit/internal/sipx"
)

// Overload protection runs in the UDP read filter, before sipgo makes a transaction of a request,
// so that what is shed costs no memory for the transaction's 32 s life:
//   - every source outside Config.Trusted may start at most SourceRate requests a second (burst
//     SourceBurst); past that its new requests are dropped unanswered (answering a flood would make
//     the PBX its amplifier), counted in pbxkit_requests_shed_total{reason="source_rate"};
//   - while the process is overloaded, measured as the Go scheduler's delay (how long runnable
//     goroutines wait for a CPU: the time every request already spends queued), new requests get
//     a stateless 503 with Retry-After, counted with reason="overload".
// Requests inside a dialog (To tag), ACK and CANCEL always pass: they end calls and free
// resources.

// loadGauge samples the Go scheduler's latency and says whether the process is overloaded: the
// 99th percentile of the delay goroutines waited to run, over the last sample period, above the
// limit.
type loadGauge struct {
	limit      time.Duration
	overloaded atomic.Bool
	last       atomic.Int64 // the last period's p99, in nanoseconds (for metrics and logs)
}

const loadSample = 100 * time.Millisecond

// run samples until stop is closed.
func (g *loadGauge) run(stop <-chan struct{}) {
	sample := []rtmetrics.Sample{{Name: "/sched/latencies:seconds"}}
	rtmetrics.Read(sample)
	prev := sample[0].Value.Float64Histogram()
	t := time.NewTicker(loadSample)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		rtmetrics.Read(sample)
		cur := sample[0].Value.Float64Histogram()
		p99 := quantileDelta(prev, cur, 0.99)
		prev = cur
		g.last.Store(int64(p99))
		g.overloaded.Store(p99 > g.limit)
	}
}

// quantileDelta is the q-quantile of what cur counted beyond prev (same buckets).
func quantileDelta(prev, cur *rtmetrics.Float64Histogram, q float64) time.Duration {
	var total uint64
	counts := make([]uint64, len(cur.Counts))
	for i := range cur.Counts {
		c := cur.Counts[i]
		if prev != nil && i < len(prev.Counts) {
			c -= min(c, prev.Counts[i])
		}
		counts[i] = c
		total += c
	}
	if total == 0 {
		return 0
	}
	want := uint64(q * float64(total))
	var seen uint64
	for i, c := range counts {
		seen += c
		if seen > want {
			return time.Duration(cur.Buckets[i+1] * float64(time.Second)) // the bucket's upper bound
		}
	}
	return time.Duration(cur.Buckets[len(cur.Buckets)-1] * float64(time.Second))
}

// sourceLimiter gives each source IP a token bucket of new requests.
type sourceLimiter struct {
	rate  float64 // tokens a second
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

// maxSources bounds the limiter's memory: past it, idle buckets are swept, and if a flood from
// that many sources is still live, unknown sources share one bucket.
const maxSources = 65536

func newSourceLimiter(rate, burst int, now func() time.Time) *sourceLimiter {
	return &sourceLimiter{rate: float64(rate), burst: float64(burst), now: now, buckets: map[netip.Addr]*bucket{}}
}

// allow takes a token of ip's bucket.
func (l *sourceLimiter) allow(ip netip.Addr) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[ip]
	if !ok {
		if len(l.buckets) >= maxSources {
			l.sweep(now)
		}
		if len(l.buckets) >= maxSources {
			ip = netip.Addr{} // the shared bucket of sources past the bound
			b = l.buckets[ip]
		}
		if b == nil {
			b = &bucket{tokens: l.burst, at: now}
			l.buckets[ip] = b
		}
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// sweep forgets buckets that have refilled (their source has been quiet).
func (l *sourceLimiter) sweep(now time.Time) {
	if now.Sub(l.swept) < time.Second {
		return
	}
	l.swept = now
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	for ip, b := range l.buckets {
		if now.Sub(b.at) >= full {
			delete(l.buckets, ip)
		}
	}
}

// shed decides, in the read filter, whether a request is dropped (its source sent too many) or
// answered 503 here (the PBX is overloaded) before sipgo makes a transaction of it.
func (p *PBX) shed(src net.Addr, req *sip.Request) bool {
	if req.Method == sip.ACK || req.Method == sip.CANCEL {
		return false
	}
	if to := req.To(); to != nil {
		if _, inDialog := to.Params.Get("tag"); inDialog {
			return false
		}
	}
	ip, ok := addrIP(src)
	if !ok {
		return false
	}
	if p.fromProxy(ip) {
		ip, _ = viaClient(req, ip) // the limit is the phone's, not the balancer's
	}
	if p.limiter != nil && !p.trusted(ip) && !p.limiter.allow(ip) {
		p.metrics.shed.WithLabelValues("source_rate").Inc()
		p.badInput.info("request dropped: its source sends too many", "src", src.String(), "method", string(req.Method))
		return true
	}
	if p.load != nil && p.load.overloaded.Load() {
		p.metrics.shed.WithLabelValues("overload").Inc()
		p.replyStateless(src, req, 503, "overloaded", sip.NewHeader("Retry-After", strconv.Itoa(2+rand.IntN(8))))
		return true
	}
	return false
}

// replyStateless answers req without a transaction, to the address it came from.
func (p *PBX) replyStateless(dst net.Addr, req *sip.Request, code int, warning string, hdrs ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, sipx.Reason(code), nil)
	res.SipVersion = "SIP/2.0"
	res.AppendHeader(sip.NewHeader("Server", p.cfg.UserAgent))
	res.AppendHeader(sip.NewHeader("Warning", p.warning(warning)))
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if _, err := p.udp.WriteTo([]byte(res.String()), dst); err != nil {
		p.badInput.info("stateless answer not sent", "dst", dst.String(), "error", err)
		return
	}
	p.metrics.response(code)
}

func addrIP(a net.Addr) (netip.Addr, bool) {
	if ua, ok := a.(*net.UDPAddr); ok {
		ip, ok := netip.AddrFromSlice(ua.IP)
		return ip.Unmap(), ok
	}
	ap, err := netip.ParseAddrPort(a.String())
	return ap.Addr().Unmap(), err == nil
}
