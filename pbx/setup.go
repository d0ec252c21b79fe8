package pbx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/media"
	"github.com/pbxkit/pbxkit/store"
)

// The parts New puts together, in the order it does.

// openStore opens Config.Database unless WithStore gave a store.
func (p *PBX) openStore() error {
	if p.store != nil {
		return nil
	}
	if p.cfg.Database == "" {
		return errors.New("pbx: no store: set Config.Database or use WithStore")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, p.cfg.Database, store.WithNodeID(p.cfg.NodeID), store.WithLogger(p.log.With("component", "store")))
	if err != nil {
		return fmt.Errorf("pbx: %w", err)
	}
	p.store, p.owned = s, s
	return nil
}

// newSIPStack makes the sipgo user agent and server over the PBX's parser and read filter.
func (p *PBX) newSIPStack() error {
	sipLog := slog.New(newLimitHandler(p.log.Handler(), p.now)).With("component", "sipgo")
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent(p.cfg.UserAgent),
		sipgo.WithUserAgentParser(p.parser),
		sipgo.WithUserAgentTransportLayerOptions(
			sip.WithTransportLayerLogger(sipLog),
			sip.WithTransportLayerReadFilter(p.readFilter),
		),
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerLogger(sipLog),
			// A transaction over a connection that closes fails at once (a transport error)
			// instead of waiting out its timers: an INVITE to a phone whose TCP connection has just
			// gone fails now, and the phone's registration is dropped (OnUnreachable).
			sip.WithTransactionLayerTerminateOnConnClose(),
			// Responses that match no client transaction (retransmissions, strays). sipgo's default
			// handler logs through its package-wide logger, i.e. prints; the call core ACKs
			// retransmitted 2xx answers of its INVITEs here.
			sip.WithTransactionLayerUnhandledResponseHandler(func(res *sip.Response) {
				if p.calls != nil && p.calls.HandleStrayResponse(res) {
					return
				}
				p.log.Debug("response matches no transaction", "status", res.StatusCode, "src", res.Source())
			}),
		),
	)
	if err != nil {
		return fmt.Errorf("pbx: sip stack: %w", err)
	}
	p.ua = ua
	if p.srv, err = sipgo.NewServer(ua, sipgo.WithServerLogger(sipLog)); err != nil {
		return fmt.Errorf("pbx: sip server: %w", err)
	}
	// Tells each connection when sipgo has framed a message on it (its deadlines).
	ua.TransportLayer().OnMessage(p.conns.messageRead)
	return nil
}

// newPresence makes the busy-lamp service over the SIP stack.
func (p *PBX) newPresence() (err error) {
	p.presence, err = newPresence(p)
	if cs := p.cluster(); err == nil && cs != nil {
		others := func() []string { return p.peers.live(p.cfg.NodeID, p.cfg.HeartbeatInterval, p.now()) }
		p.presence.share = newPresenceShare(cs, p.cfg.NodeID, p.claimTTL(), others, p.log.With("component", "presence"))
	}
	return err
}

// newRelay makes the media relay when Config gives it a port range.
func (p *PBX) newRelay() error {
	if p.cfg.RTPPortMin == 0 {
		return nil
	}
	ports, err := media.NewPorts(p.cfg.mediaIP(), p.cfg.RTPPortMin, p.cfg.RTPPortMax)
	if err == nil {
		p.relay, err = media.NewRelay(media.Config{Ports: ports, Codecs: p.cfg.Codecs, Timeout: p.cfg.MediaTimeout,
			AdvertiseIP: net.ParseIP(p.cfg.ExternalIP), Logger: p.log.With("component", "media")})
	}
	if err != nil {
		return fmt.Errorf("pbx: %w", err)
	}
	return nil
}

// newCallCore makes the call core, writing its records through the store's batching queue.
func (p *PBX) newCallCore() error {
	cdr := recordMetrics{m: p.metrics}
	if w, ok := p.store.(store.CDRWriter); ok {
		q, err := newRecordQueue(w, p.log.With("component", "records"), p.metrics.recordsLost, p.cfg.RecordSpool)
		if err != nil {
			return err
		}
		p.records, cdr.next = q, q
	}
	setup := newSetupTimer(p.metrics.setup)
	var err error
	p.calls, err = b2bua.New(p.ua, b2bua.Config{
		UDPListener: p.udp.LocalAddr().String(),
		Host:        p.advertisedHost(), Port: p.UDPAddr().Port, TLSPort: p.tlsPort(), BranchPrefix: p.branchPrefix,
		RingTimeout: p.cfg.RingTimeout, UserAgent: p.cfg.UserAgent, AckTimeout: p.cfg.AckTimeout, CopyHeaders: p.cfg.CopyHeaders,
		PassRedirects: p.cfg.PassRedirects, Resolve: p.resolve, ResolveTrunk: p.resolveTrunk, Media: p.mediaRelay(),
		Conferences: p.conferenceRooms(),
		OnEvent: func(e b2bua.Event) {
			setup.event(e)
			p.metrics.callEvent(e)
			if !p.fromPeerCall(e) {
				p.presence.callEvent(e)
			}
			p.ringing.callEvent(e)
			p.events.publish(callEvent(e))
		},
		OnUnreachable: p.dropUnreachable,
		Park:          p.cfg.Features.park(),
		Cluster:       p.callCluster(),
		Voicemail:     p.voicemail,
		RecordingsDir: p.cfg.RecordingsDir,
	}, p.log.With("component", "b2bua"), cdr)
	if err != nil {
		return fmt.Errorf("pbx: %w", err)
	}
	p.metrics.watch(p.calls, p.relay, p.records)
	p.metrics.watchRegistrations(p.store)
	p.trunkClient, err = sipgo.NewClient(p.ua, sipgo.WithClientLogger(p.log.With("component", "trunks")),
		sipgo.WithClientConnectionAddr(p.udp.LocalAddr().String()))
	if err != nil {
		return fmt.Errorf("pbx: trunk client: %w", err)
	}
	p.metrics.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pbxkit_subscriptions", Help: "Subscriptions in force: busy lamps (dialog event package) and message-waiting lamps (message-summary).",
	}, func() float64 { return float64(p.presence.count()) }))
	p.watchConferences()
	return nil
}

// abandon closes what a failed New had opened.
func (p *PBX) abandon() {
	if p.ua != nil {
		p.ua.Close()
	}
	p.closeListeners()
	p.closeRecords(context.Background())
	p.closeOwned()
}

// closeRecords writes the call records still queued, at most until ctx ends.
func (p *PBX) closeRecords(ctx context.Context) {
	if p.records == nil {
		return
	}
	if err := p.records.close(ctx); err != nil {
		p.log.Error("call records not all written at shutdown", "error", err)
	}
}
