package b2buatest

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Request describes a request a phone sends outside a dialog. Empty fields take defaults: a URI
// to To at the domain "pbx.test", a random Call-ID and branch, CSeq 1. Headers are added after
// the defaults; a default is left out when Headers has a line with the same header name.
type Request struct {
	Method  string
	URI     string
	From    string // user part
	To      string // user part
	CallID  string
	CSeq    int
	Branch  string
	Headers []string
	Body    string
}

// Build writes r as the phone sends it.
func (p *Phone) Build(r Request) string {
	if r.URI == "" {
		r.URI = "sip:" + r.To + "@pbx.test"
	}
	if r.CallID == "" {
		r.CallID = fmt.Sprintf("call-%d@test", rand.Int64())
	}
	if r.CSeq == 0 {
		r.CSeq = 1
	}
	if r.Branch == "" {
		r.Branch = fmt.Sprintf("z9hG4bK-%d", rand.Int64())
	}
	defaults := []string{
		fmt.Sprintf("Via: SIP/2.0/%s %s;branch=%s;rport", strings.ToUpper(p.transport), p.Addr(), r.Branch),
		"Max-Forwards: 70",
		fmt.Sprintf("From: <sip:%s@pbx.test>;tag=ft%d", r.From, rand.Int32()),
		fmt.Sprintf("To: <sip:%s@pbx.test>", r.To),
		"Call-ID: " + r.CallID,
		fmt.Sprintf("CSeq: %d %s", r.CSeq, r.Method),
	}
	var lines []string
	for _, d := range defaults {
		if !hasHeader(r.Headers, headerName(d)) {
			lines = append(lines, d)
		}
	}
	lines = append(lines, r.Headers...)
	if !hasHeader(r.Headers, "Content-Length") && !hasHeader(r.Headers, "l") {
		lines = append(lines, fmt.Sprintf("Content-Length: %d", len(r.Body)))
	}
	return r.Method + " " + r.URI + " SIP/2.0\r\n" + strings.Join(lines, "\r\n") + "\r\n\r\n" + r.Body
}

func headerName(line string) string {
	name, _, _ := strings.Cut(line, ":")
	return strings.TrimSpace(name)
}

func hasHeader(lines []string, name string) bool {
	for _, l := range lines {
		if strings.EqualFold(headerName(l), name) {
			return true
		}
	}
	return false
}

// SDP is a phone's session description offering PCMU on port 4000.
const SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"

// CalleeSDP is a callee's answer: PCMU on port 5000.
const CalleeSDP = "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n"

// Invite builds an INVITE from user from to user to with the phone's Contact and an SDP offer
// (SDP unless body is given), and returns it as text and parsed.
func (p *Phone) Invite(from, to string, headers []string, body ...string) (string, *sip.Request) {
	b := SDP
	if len(body) > 0 {
		b = strings.Join(body, "")
	}
	hs := []string{"Contact: <" + p.Contact(from) + ">"}
	if b != "" {
		hs = append(hs, "Content-Type: application/sdp")
	}
	msg := p.Build(Request{Method: "INVITE", From: from, To: to, Headers: append(hs, headers...), Body: b})
	m, err := sip.ParseMessage([]byte(msg))
	if err != nil {
		p.t.Fatalf("invite does not parse: %v", err)
	}
	return msg, m.(*sip.Request)
}

// SameSession reports whether two session descriptions are the same but for their origin (o=)
// lines, which the PBX writes for each dialog itself (RFC 3264 §8).
func SameSession(got []byte, want string) bool {
	return withoutOrigin(string(got)) == withoutOrigin(want)
}

func withoutOrigin(sdp string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(sdp, "\n") {
		if !strings.HasPrefix(l, "o=") {
			b.WriteString(l)
		}
	}
	return b.String()
}

// Origin returns the username, session id and version of a description's o= line.
func Origin(sdp []byte) (user, id, version string) {
	for _, l := range strings.Split(string(sdp), "\n") {
		if f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(l), "o=")); strings.HasPrefix(l, "o=") && len(f) == 6 {
			return f[0], f[1], f[2]
		}
	}
	return "", "", ""
}
