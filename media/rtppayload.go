package media

import "github.com/pion/rtp"

// rtpPayload returns the payload of pkt, whose header h was read from it, without its padding
// (RFC 3550 §5.1: the last octet counts the padding, itself included); false when the padding
// claims more than the payload holds.
func rtpPayload(h *rtp.Header, pkt []byte) ([]byte, bool) {
	payload := pkt[h.MarshalSize():]
	if h.Padding && len(payload) > 0 {
		pad := int(payload[len(payload)-1])
		if pad > len(payload) {
			return nil, false
		}
		payload = payload[:len(payload)-pad]
	}
	return payload, true
}
