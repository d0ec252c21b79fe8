// Package media relays a call's RTP and RTCP through the PBX, so each side sees only the PBX's
// address (RFC 3550 RTP, RFC 4566/3264 SDP offer and answer).
//
// Ports hands out RTP/RTCP port pairs from a configured range. ParseSDP reads session
// descriptions leniently (real phones do not keep RFC 4566's line order), AudioStream extracts
// where a side wants its audio, and Rewrite produces the description the other side sees: the
// PBX's address and relay port, codecs filtered to an allowed list.
package media
