// Package sipx holds small SIP helpers shared by pbxkit's packages, so that each rule is written
// once: IANA reason phrases (Reason), the methods served (Allow, Allowed), SDP content types
// (IsSDP), RFC 3261 tokens (IsToken) and the client side of digest authentication (Authorize).
package sipx

// reasons are the IANA "SIP Response Codes" reason phrases
// (https://www.iana.org/assignments/sip-parameters), plus 409 and 411 from RFC 2543, which
// RFC 3261 dropped but dialplans may still send.
var reasons = map[int]string{
	100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
	183: "Session Progress", 199: "Early Dialog Terminated",
	200: "OK", 202: "Accepted", 204: "No Notification",
	300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily", 305: "Use Proxy",
	380: "Alternative Service",
	400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
	404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
	407: "Proxy Authentication Required", 408: "Request Timeout", 409: "Conflict", 410: "Gone",
	411: "Length Required", 412: "Conditional Request Failed", 413: "Request Entity Too Large",
	414: "Request-URI Too Long", 415: "Unsupported Media Type", 416: "Unsupported URI Scheme",
	417: "Unknown Resource-Priority", 420: "Bad Extension", 421: "Extension Required",
	422: "Session Interval Too Small", 423: "Interval Too Brief", 424: "Bad Location Information",
	428: "Use Identity Header", 429: "Provide Referrer Identity", 430: "Flow Failed",
	433: "Anonymity Disallowed", 436: "Bad Identity Info", 437: "Unsupported Credential",
	438: "Invalid Identity Header", 439: "First Hop Lacks Outbound Support",
	440: "Max-Breadth Exceeded", 469: "Bad Info Package", 470: "Consent Needed",
	480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist", 482: "Loop Detected",
	483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here",
	487: "Request Terminated", 488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending",
	493: "Undecipherable", 494: "Security Agreement Required",
	500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
	503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
	513: "Message Too Large", 555: "Push Notification Service Not Supported",
	580: "Precondition Failure",
	600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
	607: "Unwanted", 608: "Rejected",
}

// Reason returns the IANA reason phrase of a SIP status code. A code without a registered phrase
// gets its class's generic phrase (RFC 3261 §21: an unknown code is treated as x00 of its class).
func Reason(code int) string {
	if r, ok := reasons[code]; ok {
		return r
	}
	switch code / 100 {
	case 1:
		return "Session Progress"
	case 2:
		return "OK"
	case 3:
		return "Redirection"
	case 4:
		return "Client Error"
	case 5:
		return "Server Error"
	case 6:
		return "Global Failure"
	}
	return "Unknown"
}

// Registered reports whether code has an IANA reason phrase of its own.
func Registered(code int) bool {
	_, ok := reasons[code]
	return ok
}
