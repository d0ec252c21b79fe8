package pbx

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/store"
)

// Call metrics: each ended call's disposition and media figures (from its record), its setup time
// (from its events), routing failures, and the registrations in force.

// recordMetrics counts each call's record, then hands it on to next (nil: the store keeps no
// records).
type recordMetrics struct {
	m    *metrics
	next b2bua.RecordWriter
}

func (w recordMetrics) WriteRecord(ctx context.Context, r b2bua.Record) error {
	w.m.calls.WithLabelValues(r.Disposition()).Inc()
	w.m.rtpPackets.Add(float64(r.MediaCaller.Packets + r.MediaCallee.Packets))
	w.m.rtpLost.Add(float64(r.MediaCaller.Lost + r.MediaCallee.Lost))
	if w.next == nil {
		return nil
	}
	return w.next.WriteRecord(ctx, r)
}

// setupTimer measures the post-dial delay of calls from their events.
type setupTimer struct {
	hist    prometheus.Histogram
	mu      sync.Mutex
	started map[string]time.Time // by call ID: calls not yet ringing
}

func newSetupTimer(h prometheus.Histogram) *setupTimer {
	return &setupTimer{hist: h, started: map[string]time.Time{}}
}

// event notes a call event; it must not block (b2bua.Config.OnEvent).
func (s *setupTimer) event(e b2bua.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch e.Kind {
	case b2bua.CallNew:
		s.started[e.CallID] = e.Time
	case b2bua.CallRinging, b2bua.CallAnswered:
		if t, ok := s.started[e.CallID]; ok {
			s.hist.Observe(e.Time.Sub(t).Seconds())
			delete(s.started, e.CallID)
		}
	case b2bua.CallEnded:
		delete(s.started, e.CallID)
	}
}

// routeCall runs the dialplan for a call and counts its failures (not the caller giving up).
func (p *PBX) routeCall(ctx context.Context, c *b2bua.Call) error {
	err := p.route.Handle(ctx, c)
	if err != nil && ctx.Err() == nil {
		p.metrics.dialplanErrors.Inc()
	}
	return err
}

// liveBindings is a store that lists the registrations in force.
type liveBindings interface {
	LiveBindings(ctx context.Context) ([]store.Binding, error)
}

// watchRegistrations adds the gauge of registrations in force, read from the store at each
// scrape (at most two seconds; -1 when the store does not answer).
func (m *metrics) watchRegistrations(s Store) {
	lb, ok := s.(liveBindings)
	if !ok {
		return
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pbxkit_registrations", Help: "Phone registrations (contact bindings) in force; -1 when the database does not answer.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		bs, err := lb.LiveBindings(ctx)
		if err != nil {
			return -1
		}
		return float64(len(bs))
	}))
}
