package media

import (
	"math/rand/v2"

	"github.com/pion/rtp"
)

// RTPStream makes 20 ms G.711 frames into one RTP stream (RFC 3550 §5.1): its own random SSRC,
// initial sequence number and timestamp, the sequence number up by one and the timestamp by 160 a
// frame, the marker bit on the first packet. It allocates nothing per frame.
type RTPStream struct {
	h     rtp.Header
	pkt   [12 + frameSamples]byte
	write func(pkt []byte)
}

// NewRTPStream returns a stream of payload type pt whose packets go to write; a packet is only
// valid until write returns.
func NewRTPStream(pt uint8, write func(pkt []byte)) *RTPStream {
	return &RTPStream{
		h: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: uint16(rand.Uint32()), Timestamp: rand.Uint32(),
			SSRC: rand.Uint32(), Marker: true},
		write: write,
	}
}

// SSRC returns the stream's synchronisation source.
func (s *RTPStream) SSRC() uint32 { return s.h.SSRC }

// Send sends frame (160 bytes) as the stream's next packet. Fit for ParticipantConfig.Send.
func (s *RTPStream) Send(frame []byte) {
	n, err := s.h.MarshalTo(s.pkt[:])
	if err != nil {
		return // a header without CSRC or extension always fits
	}
	m := copy(s.pkt[n:], frame)
	s.write(s.pkt[:n+m])
	s.h.Marker = false
	s.h.SequenceNumber++
	s.h.Timestamp += frameSamples
}
