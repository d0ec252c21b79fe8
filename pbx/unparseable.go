package pbx

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
	"github.com/pbxkit/pbxkit/internal/sipx"
)

// errContactNeedsBrackets: a Contact URI with headers ('?') must be in name-addr form
// (RFC 3261 §20.10; RFC 4475 §3.1.2.13).
var errContactNeedsBrackets = errors.New("contact URI with headers must be enclosed in <>")

// headers are sipgo's header parsers with one stricter rule the default lacks: the bracket rule
// above, which cannot be checked after parsing because the parsed header forgets the brackets.
var headers = func() sip.HeadersParser {
	hp := maps.Clone(sip.DefaultHeadersParser())
	contact := hp["contact"]
	strict := func(name []byte, data string) (sip.Header, error) {
		if strings.IndexByte(data, '?') >= 0 && strings.IndexByte(data, '<') < 0 {
			return nil, errContactNeedsBrackets
		}
		return contact(name, data)
	}
	hp["contact"], hp["m"] = strict, strict
	return hp
}()

// newParser is sipgo's parser with pbxkit's header parsers.
func newParser() *sip.Parser { return sip.NewParser(sip.WithHeadersParsers(headers)) }

// readFilter sees every UDP datagram before sipgo parses it. A datagram sipgo cannot parse would
// be dropped there with no answer; here a request gets a stateless 400 (or 416 / 505) when it
// names enough of itself to be answered (RFC 3261 §18.3, §8.2; RFC 4475 §3.1.2). It never returns
// an error: sipgo stops the whole listener on one.
func (p *PBX) readFilter(info sip.TransportReadProps, data []byte) (out []byte, _ error) {
	if p.draining.Load() && !bytes.HasPrefix(data, []byte("SIP/")) {
		return nil, nil // shutting down: take no new requests (answers to our BYEs still come in)
	}
	if !strings.EqualFold(info.Transport, "udp") || len(bytes.TrimSpace(data)) == 0 {
		return data, nil
	}
	// This runs on sipgo's read goroutine, which has no recover: a panic here would end the
	// process. Drop the datagram instead.
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("panic in read filter; datagram dropped", "src", info.RemoteAddr.String(), "panic", r, "stack", string(debug.Stack()))
			out = nil
		}
	}()
	msg, err := p.parser.ParseSIP(data)
	if err != nil {
		p.rejectUnparseable(info.RemoteAddr, data, err)
		return nil, nil
	}
	if req, ok := msg.(*sip.Request); ok {
		if p.shed(info.RemoteAddr, req) {
			return nil, nil
		}
		if via := req.Via(); via != nil {
			if b, _ := via.Params.Get("branch"); !strings.HasPrefix(b, sip.RFC3261BranchMagicCookie) {
				via.Params.Add("branch", rfc2543Branch(req))
				rewritten := []byte(req.String())
				// sipgo does not round-trip every header it accepts; pass the original on then.
				if _, err := p.parser.ParseSIP(rewritten); err == nil {
					return rewritten, nil
				}
			}
		}
	}
	return data, nil
}

// rfc2543Branch gives a request from an RFC 2543 element (a Via branch without the magic cookie)
// a branch that sipgo's RFC 3261 transaction matching can use. It is derived from what RFC 3261
// §17.2.3 matches such requests on: the top Via as sent, Call-ID, CSeq number, From and the
// Request-URI. A retransmission gets the same branch; so do the ACK for a non-2xx answer and a
// CANCEL, which share those values with their INVITE (the To tag and CSeq method are left out for
// that reason).
func rfc2543Branch(req *sip.Request) string {
	h := sha256.New()
	h.Write([]byte(req.Via().Value()))
	h.Write([]byte{0})
	if c := req.CallID(); c != nil { // validation answers its absence with 400 later
		h.Write([]byte(c.Value()))
	}
	h.Write([]byte{0})
	h.Write([]byte(req.Recipient.String()))
	if c := req.CSeq(); c != nil {
		h.Write([]byte(strconv.FormatUint(uint64(c.SeqNo), 10)))
	}
	if f := req.From(); f != nil {
		h.Write([]byte(f.Value()))
	}
	return sip.RFC3261BranchMagicCookie + "-2543-" + hex.EncodeToString(h.Sum(nil)[:12])
}

// rejectUnparseable answers a datagram the parser refused, from its raw header lines, to the
// address it came from.
func (p *PBX) rejectUnparseable(raddr net.Addr, data []byte, perr error) {
	p.metrics.unparseable.Inc()
	src := raddr.String()
	if bytes.HasPrefix(data, []byte("SIP/")) {
		p.badInput.info("unparseable response dropped", "src", src, "error", perr)
		return
	}
	head := data
	if i := bytes.Index(head, []byte("\r\n\r\n")); i >= 0 {
		head = head[:i]
	} else if i := bytes.Index(head, []byte("\n\n")); i >= 0 {
		head = head[:i]
	}
	lines := unfoldLines(string(head))
	if len(lines) == 0 {
		return
	}
	reqLine := lines[0]
	method, _, _ := strings.Cut(reqLine, " ")
	if method == "ACK" {
		p.badInput.info("unparseable ACK dropped", "src", src, "error", perr)
		return
	}
	var vias []string
	fields := map[string]string{}
	for _, l := range lines[1:] {
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		name = strings.ToLower(strings.TrimSpace(name))
		value = strings.TrimSpace(value)
		switch name {
		case "via", "v":
			vias = append(vias, value)
		case "from", "f", "to", "t", "call-id", "i", "cseq":
			long := map[string]string{"f": "from", "t": "to", "i": "call-id"}[name]
			if long == "" {
				long = name
			}
			if _, dup := fields[long]; !dup {
				fields[long] = value
			}
		}
	}
	if len(vias) == 0 || fields["from"] == "" || fields["to"] == "" || fields["call-id"] == "" || fields["cseq"] == "" {
		p.badInput.info("unparseable request dropped: too broken to answer", "src", src, "error", perr)
		return
	}
	code := 400
	parts := strings.Split(reqLine, " ")
	if len(parts) == 3 && strings.HasPrefix(parts[2], "SIP/") && parts[2] != "SIP/2.0" {
		code = 505
	} else if len(parts) == 3 {
		if scheme, _, ok := strings.Cut(parts[1], ":"); ok && validScheme(scheme) && !supportedScheme(scheme) {
			code = 416
		}
	}
	to := fields["to"]
	if !strings.Contains(strings.ToLower(to), ";tag=") {
		to += ";tag=" + randomToken(8)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 %d %s\r\n", code, sipx.Reason(code))
	for _, v := range vias {
		fmt.Fprintf(&b, "Via: %s\r\n", v)
	}
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %s\r\n", fields["from"], to, fields["call-id"], fields["cseq"])
	fmt.Fprintf(&b, "Server: %s\r\n", p.cfg.UserAgent)
	fmt.Fprintf(&b, "Warning: %s\r\n", p.warning(describeMalformed(lines[1:])))
	b.WriteString("Content-Length: 0\r\n\r\n")
	if _, err := p.udp.WriteTo([]byte(b.String()), raddr); err != nil {
		p.log.Warn("answering unparseable request", "src", src, "error", err)
	}
	p.metrics.response(code)
	p.badInput.info("malformed request rejected", "src", src, "status", code, "error", perr)
}

// unfoldLines splits a header block into lines and joins continuation lines (RFC 3261 §7.3.1).
func unfoldLines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n") {
		if len(out) > 0 && l != "" && (l[0] == ' ' || l[0] == '\t') {
			out[len(out)-1] += " " + strings.TrimSpace(l)
			continue
		}
		out = append(out, l)
	}
	return out
}

// validScheme checks RFC 3986 scheme syntax: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
func validScheme(s string) bool {
	if s == "" || !isAlpha(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isAlpha(c) && !('0' <= c && c <= '9') && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' }

func supportedScheme(s string) bool {
	switch strings.ToLower(s) {
	case "sip", "sips", "tel":
		return true
	}
	return false
}

// describeMalformed says, for the Warning header, what is wrong with a request the parser refused:
// the first header that does not parse, or else its request line or framing. It never passes on
// the parser's own message, which names Go internals (strconv.ParseUint: parsing "-999": ...).
func describeMalformed(headerLines []string) string {
	for _, l := range headerLines {
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			return "malformed request: a header line without a colon"
		}
		name = strings.TrimSpace(name)
		parse, known := headers[strings.ToLower(name)]
		if !known {
			continue
		}
		if _, err := parse([]byte(strings.ToLower(name)), strings.TrimSpace(value)); err != nil {
			return "malformed request: the " + name + " header cannot be read"
		}
	}
	return "malformed request: the request line or the message's framing cannot be read"
}
