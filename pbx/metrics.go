package pbx

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/media"
)

// metrics are the PBX's Prometheus series, in a registry of its own (no package globals: several
// PBXs may live in one process).
type metrics struct {
	reg             *prometheus.Registry
	requests        *prometheus.CounterVec
	responses       *prometheus.CounterVec
	authFailures    prometheus.Counter
	bans            prometheus.Counter
	unparseable     prometheus.Counter
	dialplanReloads *prometheus.CounterVec
	recordsLost     prometheus.Counter
	shed            *prometheus.CounterVec
	// Calls (callmetrics.go).
	calls          *prometheus.CounterVec
	setup          prometheus.Histogram
	rtpPackets     prometheus.Counter
	rtpLost        prometheus.Counter
	dialplanErrors prometheus.Counter
	dtmf           *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbxkit_sip_requests_total", Help: "SIP requests received, by method.",
		}, []string{"method"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbxkit_sip_responses_total", Help: "SIP responses sent by the front door and registrar, by status code.",
		}, []string{"code"}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pbxkit_auth_failures_total", Help: "Digest authentications that failed (wrong password, unknown user, replay).",
		}),
		bans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pbxkit_auth_bans_total", Help: "Source IPs banned for too many failed authentications.",
		}),
		unparseable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pbxkit_sip_unparseable_total", Help: "Datagrams that were not parseable SIP messages.",
		}),
		dialplanReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbxkit_dialplan_reloads_total", Help: "Reloads of the Lua dialplan, by result (ok, error: the old version kept running).",
		}, []string{"result"}),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbxkit_requests_shed_total", Help: "New requests not served: source_rate (dropped: the source sent too many), overload (503: the PBX is overloaded).",
		}, []string{"reason"}),
		recordsLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pbxkit_call_records_lost_total", Help: "Call records that could not be written (queue full, refused by the store, database away at shutdown).",
		}),
	}
	m.calls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pbxkit_calls_total", Help: "Calls ended, by disposition (answered, busy, no_answer, declined, cancelled, failed).",
	}, []string{"disposition"})
	m.setup = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "pbxkit_call_setup_seconds",
		Help:    "Post-dial delay: from a call's INVITE to its first ringing (180/183) or answer.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})
	m.rtpPackets = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pbxkit_rtp_packets_total", Help: "RTP packets the media relay passed, both sides of ended calls.",
	})
	m.rtpLost = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pbxkit_rtp_packets_lost_total", Help: "RTP packets the media relay found missing (sequence gaps), both sides of ended calls.",
	})
	m.dialplanErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pbxkit_dialplan_errors_total", Help: "Calls whose routing failed (script error or time-out, store failure): the caller got 500 or 503.",
	})
	m.dtmf = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pbxkit_dtmf_total", Help: "Key presses seen in calls, either side, by source (rfc4733: RTP events through the relay, info: SIP INFO).",
	}, []string{"source"})
	m.dtmf.WithLabelValues(b2bua.DTMFRFC4733)
	m.dtmf.WithLabelValues(b2bua.DTMFInfo)
	for _, d := range []string{"answered", "busy", "no_answer", "declined", "cancelled", "failed"} {
		m.calls.WithLabelValues(d) // every series from the start, so rate() sees the first call
	}
	m.reg.MustRegister(m.calls, m.setup, m.rtpPackets, m.rtpLost, m.dialplanErrors, m.dtmf)
	m.reg.MustRegister(m.requests, m.responses, m.authFailures, m.bans, m.unparseable, m.dialplanReloads, m.recordsLost, m.shed,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// watch adds the gauges of what is live: calls, dialogs, relay ports and call records waiting
// for the database. A soak compares them with their values at rest: after the calls end they
// must be back where they started.
func (m *metrics) watch(calls *b2bua.Engine, relay *media.Relay, records *recordQueue) {
	gauge := func(name, help string, value func() int) {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return float64(value()) }))
	}
	gauge("pbxkit_calls_active", "Calls in progress (ringing or answered).", calls.Active)
	gauge("pbxkit_dialogs", "SIP dialogs of calls in progress, both legs.", calls.Dialogs)
	if relay != nil {
		gauge("pbxkit_rtp_ports_in_use", "Relay RTP/RTCP port pairs allocated to calls.", relay.Ports().InUse)
	}
	if records != nil {
		gauge("pbxkit_call_records_pending", "Call records not yet in the database (queued or waiting for it).", records.backlog)
	}
}

// callEvent counts what call events count: key presses (pbxkit_dtmf_total). It must not block.
func (m *metrics) callEvent(e b2bua.Event) {
	if e.Kind == b2bua.CallDTMF && e.Source != "" {
		m.dtmf.WithLabelValues(e.Source).Inc()
	}
}

func (m *metrics) response(code int) { m.responses.WithLabelValues(strconv.Itoa(code)).Inc() }
