package media

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// Config configures a Relay.
type Config struct {
	// Ports hands out the RTP/RTCP port pairs, two per call (one facing each side).
	Ports *Ports
	// AdvertiseIP is the address named in the session descriptions the relay writes (c= and o=),
	// where the ports' own address cannot be reached by the phones: a relay behind NAT binds a
	// private address and names the public one. Default: the address of Ports.
	AdvertiseIP net.IP
	// Codecs are the codec names allowed in offers and answers. Default DefaultCodecs.
	Codecs []string
	// Timeout ends a call (Session.Idle) when one side sent no RTP for this long while it was
	// expected to send: both descriptions let it send and it did not put the call on hold itself
	// (idle.go). Default 60 s; negative turns it off.
	Timeout time.Duration
	// LatchWindow is how long, after a side's description (or, while nothing is learned for it
	// yet, the other side's, which is when its media may start), the relay learns where the
	// side's packets really come from (strict source learning, source.go): the address the side
	// signalled is taken at once, and replaces a source learned otherwise within the window; a
	// source on another port or host (NAT) is learned within the window only after a probation.
	// Afterwards only the learned source is taken. Default 5 s.
	LatchWindow time.Duration
	// LatchDelay is how long, after that learning starts, a source on another host than the one
	// the side signalled must wait before its probation may begin: the signalled address gets the
	// first word, so a host spraying the relay's ports cannot be learned in place of a phone that
	// is about to send from the address it signalled. A phone behind NAT loses this much of its
	// first audio. Default 500 ms; negative: no delay.
	LatchDelay time.Duration
	// Loops is how many event loops serve the relay's sockets on Linux (each call belongs to
	// one). Default: GOMAXPROCS.
	Loops int
	// Logger receives the relay's logs. Default: discarded.
	Logger *slog.Logger
}

// Relay makes media sessions: one per call.
type Relay struct {
	cfg Config
	log *slog.Logger
	eng relayEngine
}

// NewRelay validates cfg and returns a relay.
func NewRelay(cfg Config) (*Relay, error) {
	if cfg.Ports == nil {
		return nil, errors.New("media: no port range")
	}
	if len(cfg.Codecs) == 0 {
		cfg.Codecs = DefaultCodecs
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 60 * time.Second
	}
	if cfg.LatchWindow <= 0 {
		cfg.LatchWindow = 5 * time.Second
	}
	if cfg.LatchDelay == 0 {
		cfg.LatchDelay = 500 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Relay{cfg: cfg, log: cfg.Logger}, nil
}

// advertised is the address the relay names in SDP.
func (r *Relay) advertised() net.IP {
	if r.cfg.AdvertiseIP != nil {
		return r.cfg.AdvertiseIP
	}
	return r.cfg.Ports.IP()
}

// Ports returns the relay's port range.
func (r *Relay) Ports() *Ports { return r.cfg.Ports }

// Session relays one call's audio: side A is the caller, side B the callee. Each side has a port
// pair of its own on the PBX; what A sends to its pair goes out of B's pair to B, and back.
type Session struct {
	r      *Relay
	a, b   *side
	eng    sessionEngine // how the sockets are read: loop_linux.go, loop_other.go
	wg     sync.WaitGroup
	closed atomic.Bool
	stop   chan struct{}

	idleMu   sync.Mutex    // guards idle, idleSide and fired; held while the timeout is checked
	idle     chan struct{} // closed when the media timeout hit; a new description arms a new one
	idleSide string        // who fell silent: "caller", "callee" or "both"
	fired    bool

	offer atomic.Pointer[sdp.SessionDescription] // the caller's latest description, for EarlyAnswer

	// Read for every packet, so without a lock: Rewrite replaces the table, OnDTMF the function.
	pts    atomic.Pointer[ptTable] // payload types of either side's descriptions
	onDTMF atomic.Pointer[func(fromCaller bool, digit string)]

	codec atomic.Value // string: the first speech codec of the latest description (record.go)

	recMu sync.Mutex               // serialises starting and stopping a recording
	rec   atomic.Pointer[recorder] // the recording, nil when none; read for every packet (tap)
}

// ptTable says, per RTP payload type, what both sides' descriptions named it: telephone-event or
// not, and its clock rate (0: not named).
type ptTable struct {
	event [128]bool
	clock [128]uint32
	law   [128]uint8 // lawMu, lawA, lawOther, or lawNone when not named (record.go)
}

// OnDTMF sets f to be told of every RFC 4733 key press either side sends (once per key, at the
// end of the event). f runs on the relay's goroutine, which serves other calls too: it must not
// block, though it may close the session.
func (s *Session) OnDTMF(f func(fromCaller bool, digit string)) {
	s.onDTMF.Store(&f)
}

// dtmfDigits are the RFC 4733 §3.2 event codes of the keypad.
const dtmfDigits = "0123456789*#ABCD"

// keyPress is a key pressed on one side, to be told to the session's OnDTMF listener.
type keyPress struct {
	s          *Session
	fromCaller bool
	digit      byte
}

func (k keyPress) tell() {
	if f := k.s.onDTMF.Load(); f != nil {
		(*f)(k.fromCaller, string(k.digit))
	}
}

// dtmf looks at a packet of side sd: an RFC 4733 telephone-event whose end bit is set is a key
// press, reported once (the end packet is sent three times, with the same timestamp).
func (s *Session) dtmf(sd *side, h *rtp.Header, pkt []byte, pts *ptTable, keys []keyPress) []keyPress {
	if pts == nil || !pts.event[h.PayloadType&0x7f] || s.onDTMF.Load() == nil {
		return keys
	}
	payload := pkt[h.MarshalSize():]
	if len(payload) < 4 || payload[1]&0x80 == 0 || int(payload[0]) >= len(dtmfDigits) {
		return keys
	}
	sd.mu.Lock()
	seen := sd.eventSeen && sd.lastEventTS == h.Timestamp
	sd.eventSeen, sd.lastEventTS = true, h.Timestamp
	sd.mu.Unlock()
	if seen {
		return keys
	}
	return append(keys, keyPress{s: s, fromCaller: sd == s.a, digit: dtmfDigits[payload[0]]})
}

// NewSession allocates the call's two port pairs and starts relaying. ErrNoPorts when the range
// is exhausted.
func (r *Relay) NewSession() (*Session, error) {
	pa, err := r.cfg.Ports.Allocate()
	if err != nil {
		return nil, err
	}
	pb, err := r.cfg.Ports.Allocate()
	if err != nil {
		pa.Close()
		return nil, err
	}
	s := &Session{r: r, idle: make(chan struct{}), stop: make(chan struct{})}
	s.a = &side{pair: pa, name: "caller"}
	s.b = &side{pair: pb, name: "callee"}
	s.a.other, s.b.other = s.b, s.a
	for _, sd := range []*side{s.a, s.b} {
		sd.last.Store(time.Now().UnixNano())
	}
	if err := s.startEngine(); err != nil {
		pa.Close()
		pb.Close()
		return nil, err
	}
	if r.cfg.Timeout > 0 {
		s.wg.Add(1)
		go s.watch()
	}
	return s, nil
}

// side is one party of the call and the PBX's port pair facing it.
type side struct {
	name  string
	pair  *Pair
	other *side

	mu          sync.Mutex
	described   bool           // the side sent a description
	signalled   netip.AddrPort // RTP address from the side's SDP (invalid: none yet, disabled, 0.0.0.0)
	rtcpAddr    netip.AddrPort
	mux         bool
	dir         string         // the direction its latest description gave (sendrecv, sendonly, ...)
	source      netip.AddrPort // learned: where the side's packets come from (invalid: not yet)
	heard       time.Time      // the learned source's last datagram
	learnStart  time.Time      // when source learning (re)started (source.go)
	learnUntil  time.Time      // learnStart + LatchWindow
	cand        candidate      // a source on probation
	strangers   uint64         // datagrams dropped for their source
	stats       stream         // what the side sent (received by the PBX)
	eventSeen   bool           // an RFC 4733 event ended; lastEventTS is its timestamp
	lastEventTS uint32
	rtcpPackets uint64
	report      Report    // the side's latest RTCP reception report
	srs         [4]srSeen // sender reports relayed to the side, for its round trip
	srNext      int

	last    atomic.Int64               // unix nanoseconds of the side's last RTP packet
	playing atomic.Bool                // the PBX plays audio to this side: the other side's packets are dropped
	app     atomic.Pointer[attachment] // the PBX is this side's other end (app.go)
}

// Rewrite takes a session description one side sent (fromCaller: side A) on its way to the other,
// learns where that side wants its media, and returns the description with the PBX's address and
// the port facing the other side. Malformed SDP is ErrMalformedSDP (400), an audio stream without
// allowed codec ErrNoCodec (488).
func (s *Session) Rewrite(fromCaller bool, body []byte) ([]byte, error) {
	from, to := s.a, s.b
	if !fromCaller {
		from, to = s.b, s.a
	}
	sd, err := ParseSDP(body)
	if err != nil {
		return nil, err
	}
	st, ok := AudioStream(sd)
	if !ok {
		return nil, ErrNoCodec
	}
	out, err := Rewrite(sd, s.r.advertised(), to.pair.Port, s.r.cfg.Codecs)
	if err != nil {
		return nil, err
	}
	if fromCaller {
		s.offer.Store(sd)
	}
	pts := payloadTypes(sd)
	if len(pts) > 0 {
		// Copy on write; both sides' descriptions may arrive at once (an UPDATE crossing a
		// re-INVITE), so retry when the table changed meanwhile.
		for {
			old := s.pts.Load()
			var t ptTable
			if old != nil {
				t = *old
			}
			for _, pt := range pts {
				t.clock[pt.pt] = pt.clock
				t.law[pt.pt] = lawOf(pt.name)
				if strings.EqualFold(pt.name, "telephone-event") {
					t.event[pt.pt] = true
				}
			}
			if s.pts.CompareAndSwap(old, &t) {
				break
			}
		}
	}
	// The latest description is, as a rule, an answer: its first speech codec is the one the
	// call's audio goes in from now on (RFC 3264 §6.1), what recording must decode.
	s.codec.Store(speechCodec(pts))
	now := time.Now()
	from.describe(addrPort(st.RTP), addrPort(st.RTCP), st.Mux, st.Direction, now, s.r.cfg.LatchWindow)
	to.mu.Lock()
	if to.described && !to.source.IsValid() {
		to.relearn(now, s.r.cfg.LatchWindow) // its media may start now: the answer reaching the caller
	}
	to.mu.Unlock()
	s.rearm(now)
	return out, nil
}

const maxPacket = 1500

type packetKind int

const (
	junk      packetKind = iota
	rtpPacket            // RTP version 2, header parsed into h
	rtcpMuxed            // RTCP on the RTP port (RFC 5761 §4: payload types 64-95 are RTCP's)
)

// classify tells RTP from multiplexed RTCP and from anything else, which is dropped: not version
// 2, shorter than a header, or a header that does not parse (bad CSRC count or extension).
func classify(pkt []byte, h *rtp.Header) packetKind {
	if len(pkt) < 8 || pkt[0]>>6 != 2 {
		return junk
	}
	if pt := pkt[1] & 0x7f; pt >= 64 && pt <= 95 {
		return rtcpMuxed // the shortest RTCP, an empty receiver report, is 8 bytes
	}
	if len(pkt) < 12 {
		return junk
	}
	if _, err := h.Unmarshal(pkt); err != nil {
		return junk
	}
	return rtpPacket
}

// fromRTPPort handles a datagram that arrived at sd's RTP port from src, received at now: RTP is
// relayed to the other side; anything that is not RTP version 2 is dropped; with rtcp-mux, RTCP
// (payload types 64-95, RFC 5761 §4) is relayed as RTCP. Key presses found are appended to keys.
func (s *Session) fromRTPPort(sd *side, pkt []byte, src netip.AddrPort, h *rtp.Header, now time.Time, keys []keyPress) []keyPress {
	kind := classify(pkt, h)
	if kind == junk {
		return keys
	}
	if kind == rtcpMuxed {
		if s.accept(sd, src, nil, now) {
			s.relayRTCP(sd, pkt)
		}
		return keys
	}
	if !s.accept(sd, src, h, now) {
		return keys
	}
	sd.last.Store(now.UnixNano())
	pts := s.pts.Load()
	var clock uint32
	if pts != nil {
		clock = pts.clock[h.PayloadType&0x7f]
	}
	sd.mu.Lock()
	sd.stats.add(h, len(pkt), now, clock)
	sd.mu.Unlock()
	keys = s.dtmf(sd, h, pkt, pts, keys)
	if at := sd.app.Load(); at != nil {
		// The PBX is this side's other end (app.go): its audio goes to the App, not the other side.
		if pts == nil || !pts.event[h.PayloadType&0x7f] {
			s.toApp(at, h, pkt, pts)
		}
		return keys
	}
	s.tap(sd, h, pkt, pts, now)
	if dst := sd.other.rtpDest(); dst.IsValid() && !sd.other.playing.Load() {
		sd.other.pair.rtp.send(pkt, dst)
	}
	return keys
}

// fromRTCPPort handles a datagram that arrived at sd's RTCP port from src: RTCP from the side's
// host (the learned source's, or the signalled one's until a source is learned) is relayed to the
// other side.
func (s *Session) fromRTCPPort(sd *side, pkt []byte, src netip.AddrPort) {
	if len(pkt) < 8 || pkt[0]>>6 != 2 {
		return
	}
	if sd.acceptRTCP(src) {
		s.relayRTCP(sd, pkt)
	}
}

func (s *Session) relayRTCP(sd *side, pkt []byte) {
	sd.mu.Lock()
	sd.rtcpPackets++
	sd.mu.Unlock()
	s.readRTCP(sd, pkt, time.Now())
	o := sd.other
	dst, mux := o.rtcpDest()
	if !dst.IsValid() {
		return
	}
	if mux {
		o.pair.rtp.send(pkt, dst)
	} else {
		o.pair.rtcp.send(pkt, dst)
	}
}

// Ports returns the PBX's RTP ports facing the caller and the callee.
func (s *Session) Ports() (caller, callee int) { return s.a.pair.Port, s.b.pair.Port }

// Stats returns what each side sent so far.
func (s *Session) Stats() (caller, callee Stats) { return s.a.snapshot(), s.b.snapshot() }

// Close stops relaying, releases both port pairs and waits for the relay's goroutines. It is
// safe to call more than once.
func (s *Session) Close() {
	if s.closed.Swap(true) {
		return
	}
	close(s.stop)
	s.stopEngine()
	s.wg.Wait()
	s.closeRecording() // after the engine: no packet is tapped any more
}

// EarlyAnswer answers the caller's offer with the PBX itself as the other end, for early media
// (183) the PBX plays: the PBX's address, the port facing the caller (the same the callee's
// answer will name later, so the caller's media never moves), the first G.711 codec of the offer
// and telephone-event if offered. It returns the codec to play in.
func (s *Session) EarlyAnswer() ([]byte, Codec, error) {
	offer := s.offer.Load()
	if offer == nil {
		return nil, Codec{}, fmt.Errorf("%w: the caller made no offer", ErrNoCodec)
	}
	st, ok := AudioStream(offer)
	if !ok || st.RTP == nil {
		return nil, Codec{}, ErrNoCodec
	}
	m := offer.MediaDescriptions[st.Index]
	var codec Codec
	var event string
	for _, f := range m.MediaName.Formats {
		switch name := strings.ToUpper(codecName(m, f)); {
		case codec.Name == "" && name == "PCMU":
			codec = PCMU
		case codec.Name == "" && name == "PCMA":
			codec = PCMA
		case name == "TELEPHONE-EVENT" && event == "":
			event = f
		}
	}
	if codec.Name == "" {
		return nil, Codec{}, fmt.Errorf("%w: the PBX plays G.711 and the caller offered none", ErrNoCodec)
	}
	ip := s.r.advertised()
	addrType := "IP4"
	if ip.To4() == nil {
		addrType = "IP6"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=pbxkit %d 1 IN %s %s\r\ns=pbxkit\r\nc=IN %s %s\r\nt=0 0\r\n", s.a.pair.Port, addrType, ip, addrType, ip)
	formats := strconv.Itoa(int(codec.PayloadType))
	if event != "" {
		formats += " " + event
	}
	fmt.Fprintf(&b, "m=audio %d RTP/AVP %s\r\na=rtpmap:%d %s/8000\r\n", s.a.pair.Port, formats, codec.PayloadType, codec.Name)
	if event != "" {
		fmt.Fprintf(&b, "a=rtpmap:%s telephone-event/8000\r\na=fmtp:%s 0-15\r\n", event, event)
	}
	b.WriteString("a=sendrecv\r\n")
	// An answer the caller's media may start on: learn its source from now.
	s.a.mu.Lock()
	if s.a.described && !s.a.source.IsValid() {
		s.a.relearn(time.Now(), s.r.cfg.LatchWindow)
	}
	s.a.mu.Unlock()
	return []byte(b.String()), codec, nil
}

// Play sends src to the caller (toCaller) or the callee from the PBX's port facing it, until src
// is over or ctx ends. Meanwhile what the other side sends toward it is dropped; afterwards
// relaying goes on through the same ports, so no new description is needed.
func (s *Session) Play(ctx context.Context, toCaller bool, codec Codec, src Source) error {
	sd := s.b
	if toCaller {
		sd = s.a
	}
	if sd.playing.Swap(true) {
		return errors.New("media: already playing to that side")
	}
	defer sd.playing.Store(false)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return play(ctx, sd.pair.rtp.send, sd.rtpDest, codec.PayloadType, src)
}
