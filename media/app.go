package media

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/rtp"
)

// The application side of a call: the PBX itself is one side's other end. An App attached to a
// side (Session.Attach) takes everything the side sends, decoded to 16-bit linear PCM at 8 kHz,
// and gives what the PBX sends to it, one 20 ms frame at a time, from the port the side already
// knows. Meanwhile the relay neither passes the side's audio on nor passes the other side's audio
// to it. An IVR (prompts, key presses, recording a message), voicemail and a conference's mixer
// are Apps; detaching the App lets relaying go on through the same ports, with no new offer.

// App is the PBX's own end of one side of a call.
type App interface {
	// Receive takes the audio of one RTP packet the side sent, decoded (160 samples for a 20 ms
	// packet). It runs on the relay's goroutine, which serves other calls too: it must not block,
	// and pcm is only valid during the call. RFC 4733 events are not audio: they reach the
	// session's OnDTMF listener.
	Receive(pcm []int16)
	// Send fills dst (160 samples) with the next 20 ms the PBX sends to the side: silence (zeros)
	// when it has nothing to say, so the side hears one steady stream. It is called every 20 ms,
	// paced against a clock, on a goroutine of the attachment.
	Send(dst []int16)
}

// ErrAttached is returned by Attach and Play when the PBX already sends to that side.
var ErrAttached = errors.New("media: the PBX already sends to that side")

// attachment is an App attached to one side.
type attachment struct {
	app   App
	codec Codec
	buf   [maxAppSamples]int16 // the decoded packet; only the side's reading goroutine uses it
}

// maxAppSamples bounds the audio of one packet handed to an App: 120 ms at 8 kHz.
const maxAppSamples = 960

// Attach makes app the caller's (toCaller) or the callee's other end until the returned detach
// is called or the session closes: the side's audio goes to app.Receive, and app.Send's frames go
// to the side in codec, paced at 20 ms, from the PBX's port facing it. detach waits for the
// sending goroutine and may be called more than once; a packet the relay was handling as detach
// ran may still reach Receive once afterwards.
func (s *Session) Attach(toCaller bool, codec Codec, app App) (detach func(), err error) {
	sd := s.b
	if toCaller {
		sd = s.a
	}
	if codec.encode == nil {
		return nil, ErrNoCodec
	}
	if s.closed.Load() {
		return nil, errors.New("media: session closed")
	}
	if !s.takeOver(sd) {
		return nil, ErrAttached
	}
	at := &attachment{app: app, codec: codec}
	sd.app.Store(at)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(done)
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	s.wg.Add(1)
	sent := make(chan struct{})
	go func() {
		defer s.wg.Done()
		defer close(sent)
		src := &appSource{app: app, codec: codec}
		if err := play(ctx, s.appSend(sd), sd.rtpDest, codec.PayloadType, src); err != nil {
			s.r.log.Debug("application audio", "side", sd.name, "error", err)
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
			<-sent
			sd.app.CompareAndSwap(at, nil)
			sd.playing.Store(false)
		})
	}, nil
}

// appSend sends an App's packets from sd's port. A failed send (the kernel's buffer full,
// EAGAIN with MSG_DONTWAIT, a firewall's EPERM, an unreachable address) loses that packet only:
// it is logged, at most once a second with the count since, and the App keeps being paced, so
// its sounds still end (Play returns). Only the socket's closing ends the sending.
func (s *Session) appSend(sd *side) func([]byte, netip.AddrPort) error {
	var last time.Time
	failed := 0
	return func(pkt []byte, dst netip.AddrPort) error {
		err := sd.pair.rtp.send(pkt, dst)
		if err == nil || errors.Is(err, errClosed) || errors.Is(err, net.ErrClosed) {
			return err
		}
		failed++
		if now := time.Now(); now.Sub(last) >= time.Second {
			s.r.log.Warn("application audio not sent", "side", sd.name, "dest", dst, "failed", failed, "error", err)
			last, failed = now, 0
		}
		return nil
	}
}

// takeOver marks sd as played to by the PBX. A Play being stopped (early media ending as the
// PBX answers) is given a moment to return: its context was cancelled, and it returns within a
// frame.
func (s *Session) takeOver(sd *side) bool {
	for range 25 {
		if sd.playing.CompareAndSwap(false, true) {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// appSource turns an App's PCM frames into a Source in its codec.
type appSource struct {
	app   App
	codec Codec
	pcm   [frameSamples]int16
}

func (a *appSource) Frame(dst []byte) bool {
	clear(a.pcm[:])
	a.app.Send(a.pcm[:])
	for i, v := range a.pcm {
		dst[i] = a.codec.encode(v)
	}
	return true
}

// toApp hands the audio of a packet from sd to the App attached to it: G.711 is decoded by its
// payload type (the static 0 and 8, or the names the descriptions gave); anything else (events,
// comfort noise, other codecs) is dropped.
func (s *Session) toApp(at *attachment, h *rtp.Header, pkt []byte, pts *ptTable) {
	payload, ok := rtpPayload(h, pkt)
	if !ok {
		return
	}
	decode := decoderFor(h.PayloadType&0x7f, pts)
	if decode == nil || len(payload) == 0 {
		return
	}
	n := min(len(payload), maxAppSamples)
	for i := range n {
		at.buf[i] = decode(payload[i])
	}
	at.app.Receive(at.buf[:n])
}

// decoderFor returns the G.711 decoder of payload type pt, nil when it is not G.711.
func decoderFor(pt uint8, pts *ptTable) func(uint8) int16 {
	law := staticLaw(pt)
	if pts != nil && pts.law[pt] != lawNone {
		law = pts.law[pt]
	}
	switch law {
	case lawMu:
		return PCMU.decode
	case lawA:
		return PCMA.decode
	}
	return nil
}

// Encode encodes 16-bit linear samples into dst in the codec (len(dst) >= len(pcm)).
func (c Codec) Encode(dst []byte, pcm []int16) {
	for i, v := range pcm {
		dst[i] = c.encode(v)
	}
}

// Decode decodes G.711 bytes into dst (len(dst) >= len(data)).
func (c Codec) Decode(dst []int16, data []byte) {
	for i, b := range data {
		dst[i] = c.decode(b)
	}
}
