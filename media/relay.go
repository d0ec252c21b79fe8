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
	// Codecs are the codec names allowed in offers and answers. Default DefaultCodecs.
	Codecs []string
	// Timeout hangs a call up when no RTP arrived from either side for this long while the call
	// is not on hold. Default 60 s; negative turns it off.
	Timeout time.Duration
	// LatchWindow is how long after a side's description changes its packets may come from an
	// address other than the one it signalled (NAT): the first source seen in that window is
	// latched to. Default 5 s.
	LatchWindow time.Duration
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
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Relay{cfg: cfg, log: cfg.Logger}, nil
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
	idle   chan struct{} // closed when the media timeout hit
	stop   chan struct{}

	offer atomic.Pointer[sdp.SessionDescription] // the caller's latest description, for EarlyAnswer

	// Read for every packet, so without a lock: Rewrite replaces the table, OnDTMF the function.
	pts    atomic.Pointer[ptTable] // payload types of either side's descriptions
	onDTMF atomic.Pointer[func(fromCaller bool, digit string)]
}

// ptTable says, per RTP payload type, what both sides' descriptions named it: telephone-event or
// not, and its clock rate (0: not named).
type ptTable struct {
	event [128]bool
	clock [128]uint32
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
	signalled   netip.AddrPort // RTP address from the side's SDP (invalid: none yet, or disabled)
	rtcpAddr    netip.AddrPort
	mux         bool
	hold        bool
	latchedRTP  netip.AddrPort // where the side's packets really come from (invalid: not yet)
	latchOpen   time.Time      // until when a new source may be latched to
	stats       stream         // what the side sent (received by the PBX)
	eventSeen   bool           // an RFC 4733 event ended; lastEventTS is its timestamp
	lastEventTS uint32
	rtcpPackets uint64
	report      Report    // the side's latest RTCP reception report
	srs         [4]srSeen // sender reports relayed to the side, for its round trip
	srNext      int

	last    atomic.Int64 // unix nanoseconds of the side's last RTP packet
	playing atomic.Bool  // the PBX plays audio to this side: the other side's packets are dropped
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
	out, err := Rewrite(sd, s.r.cfg.Ports.IP(), to.pair.Port, s.r.cfg.Codecs)
	if err != nil {
		return nil, err
	}
	if fromCaller {
		s.offer.Store(sd)
	}
	if pts := payloadTypes(sd); len(pts) > 0 {
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
				if strings.EqualFold(pt.name, "telephone-event") {
					t.event[pt.pt] = true
				}
			}
			if s.pts.CompareAndSwap(old, &t) {
				break
			}
		}
	}
	rtpAddr, rtcpAddr := addrPort(st.RTP), addrPort(st.RTCP)
	from.mu.Lock()
	changed := !rtpAddr.IsValid() || rtpAddr != from.signalled
	from.signalled, from.rtcpAddr, from.mux, from.hold = rtpAddr, rtcpAddr, st.Mux, st.OnHold()
	if changed {
		from.latchedRTP = netip.AddrPort{}
		from.latchOpen = time.Now().Add(s.r.cfg.LatchWindow)
	}
	from.mu.Unlock()
	from.last.Store(time.Now().UnixNano()) // a new description restarts the media timeout
	return out, nil
}

// accept applies the latching rule to a packet from src. Packets from the signalled address are
// always accepted, and latch. Otherwise a source is latched to only while the window after the
// last description is open and no source has been latched yet (a phone behind NAT sends from an
// address other than its SDP's); afterwards a stranger's packets are dropped, so media cannot be
// hijacked by guessing the port.
func (sd *side) accept(src netip.AddrPort) bool {
	src = unmap(src)
	sd.mu.Lock()
	defer sd.mu.Unlock()
	switch {
	case sd.latchedRTP.IsValid() && sd.latchedRTP == src:
		return true
	case sd.signalled.IsValid() && sd.signalled == src:
		sd.latchedRTP = src
		return true
	case !sd.latchedRTP.IsValid() && time.Now().Before(sd.latchOpen):
		sd.latchedRTP = src
		return true
	}
	return false
}

// rtpDest is where packets for this side go: the latched source (symmetric RTP, RFC 4961), or
// the signalled address until the side has sent anything.
func (sd *side) rtpDest() netip.AddrPort {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	if sd.latchedRTP.IsValid() {
		return sd.latchedRTP
	}
	return sd.signalled
}

// rtcpDest is where RTCP for this side goes, and whether it goes over the RTP port (rtcp-mux).
func (sd *side) rtcpDest() (netip.AddrPort, bool) {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	if sd.mux {
		if sd.latchedRTP.IsValid() {
			return sd.latchedRTP, true
		}
		return sd.signalled, true
	}
	if sd.latchedRTP.IsValid() && sd.latchedRTP.Addr() != sd.signalled.Addr() {
		// Behind NAT: RTCP goes to the port above the latched RTP source.
		return netip.AddrPortFrom(sd.latchedRTP.Addr(), sd.latchedRTP.Port()+1), false
	}
	return sd.rtcpAddr, false
}

// addrPort converts an address from SDP; nil or port 0 is the invalid AddrPort.
func addrPort(a *net.UDPAddr) netip.AddrPort {
	if a == nil || a.Port == 0 {
		return netip.AddrPort{}
	}
	return unmap(a.AddrPort())
}

func unmap(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }

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
	if kind == junk || !sd.accept(src) {
		return keys
	}
	if kind == rtcpMuxed {
		s.relayRTCP(sd, pkt)
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
	if dst := sd.other.rtpDest(); dst.IsValid() && !sd.other.playing.Load() {
		sd.other.pair.rtp.send(pkt, dst)
	}
	return keys
}

// fromRTCPPort handles a datagram that arrived at sd's RTCP port from src: RTCP from the side's
// address is relayed to the other side.
func (s *Session) fromRTCPPort(sd *side, pkt []byte, src netip.AddrPort) {
	if len(pkt) < 8 || pkt[0]>>6 != 2 {
		return
	}
	ip := src.Addr().Unmap()
	sd.mu.Lock()
	known := sd.latchedRTP.IsValid() && sd.latchedRTP.Addr() == ip || sd.signalled.IsValid() && sd.signalled.Addr() == ip
	sd.mu.Unlock()
	if known {
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

// watch closes Idle when neither side sent RTP for the timeout while the call is not on hold.
func (s *Session) watch() {
	defer s.wg.Done()
	timeout := s.r.cfg.Timeout
	tick := time.NewTicker(min(timeout/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-tick.C:
			if s.onHold() {
				s.a.last.Store(now.UnixNano())
				s.b.last.Store(now.UnixNano())
				continue
			}
			last := max(s.a.last.Load(), s.b.last.Load())
			if now.Sub(time.Unix(0, last)) >= timeout {
				close(s.idle)
				return
			}
		}
	}
}

func (s *Session) onHold() bool {
	for _, sd := range []*side{s.a, s.b} {
		sd.mu.Lock()
		hold := sd.hold
		sd.mu.Unlock()
		if hold {
			return true
		}
	}
	return false
}

// Idle is closed when the media timeout hit: no RTP from either side for Config.Timeout while
// the call was not on hold. The call should be hung up.
func (s *Session) Idle() <-chan struct{} { return s.idle }

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
	ip := s.r.cfg.Ports.IP()
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
