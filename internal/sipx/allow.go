package sipx

import "strings"

// Allow is the Allow header value (RFC 3261 §20.5): the methods pbxkit serves. It goes into
// OPTIONS answers, 405 responses and the INVITEs the PBX sends, so that every place names the
// same methods.
const Allow = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, REFER, NOTIFY, SUBSCRIBE"

// Allowed reports whether method is one of Allow's. Methods are case-sensitive (RFC 3261 §7.1).
// It reads Allow itself, so the header and the check cannot drift apart.
func Allowed(method string) bool {
	for rest := Allow; rest != ""; {
		var m string
		m, rest, _ = strings.Cut(rest, ", ")
		if m == method {
			return true
		}
	}
	return false
}
