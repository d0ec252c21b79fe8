package sipx

import "strings"

// ContentTypeSDP is the media type of session descriptions (RFC 4566 §8.1), the only body type
// pbxkit accepts in INVITEs (its Accept header value).
const ContentTypeSDP = "application/sdp"

// IsSDP reports whether a Content-Type header value names SDP. Media types compare without case
// and may carry parameters (RFC 3261 §20.15, RFC 2045 §5.1): "Application/SDP; charset=utf-8"
// is SDP too.
func IsSDP(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(mt), ContentTypeSDP)
}
