package media

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// ErrMalformedSDP is returned for a session description that cannot be read, even leniently: the
// request carrying it gets 400.
var ErrMalformedSDP = errors.New("media: malformed SDP")

// ErrNoCodec is returned when an offer has no allowed codec in any audio stream: 488 Not
// Acceptable Here (or 606 when the dialplan asks).
var ErrNoCodec = errors.New("media: no allowed codec offered")

// DefaultCodecs are the codecs allowed when none are configured.
var DefaultCodecs = []string{"PCMU", "PCMA", "G722", "opus", "telephone-event"}

// staticCodecs names the static RTP payload types (RFC 3551 §6) a description may use without an
// rtpmap line.
var staticCodecs = map[string]string{"0": "PCMU", "3": "GSM", "4": "G723", "8": "PCMA", "9": "G722",
	"13": "CN", "18": "G729"}

// sessionOrder and mediaOrder are the line orders RFC 4566 §5 prescribes, which pion/sdp enforces.
const (
	sessionOrder = "vosiuepcbtrzka"
	mediaOrder   = "icbka"
)

// ParseSDP reads a session description. pion/sdp insists on RFC 4566's line order; real phones do
// not always keep it (c= after t=, a= before c=), so a description it refuses is put into that
// order, line types kept in their original relative order, and read again. Lines are split on
// CRLF or LF.
func ParseSDP(body []byte) (*sdp.SessionDescription, error) {
	sd := &sdp.SessionDescription{}
	if err := sd.Unmarshal(body); err == nil {
		return sd, checkSDP(sd)
	}
	reordered, err := reorder(body)
	if err != nil {
		return nil, err
	}
	sd = &sdp.SessionDescription{}
	if err := sd.Unmarshal(reordered); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedSDP, err)
	}
	return sd, checkSDP(sd)
}

// reorder sorts the lines of each section (the session part, then each m= section) into RFC 4566
// order.
func reorder(body []byte) ([]byte, error) {
	text := strings.ReplaceAll(string(body), "\r\n", "\n")
	var sections [][]string
	cur := []string{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, "\r ")
		if line == "" {
			continue
		}
		if len(line) < 2 || line[1] != '=' {
			return nil, fmt.Errorf("%w: line %q is not type=value", ErrMalformedSDP, line)
		}
		if line[0] == 'm' {
			sections = append(sections, cur)
			cur = []string{line}
			continue
		}
		cur = append(cur, line)
	}
	sections = append(sections, cur)
	var out bytes.Buffer
	for i, sec := range sections {
		order := sessionOrder
		start := 0
		if i > 0 {
			order = mediaOrder
			out.WriteString(sec[0] + "\r\n") // the m= line leads its section
			start = 1
		}
		for _, t := range order {
			for _, line := range sec[start:] {
				if rune(line[0]) == t {
					out.WriteString(line + "\r\n")
				}
			}
		}
		for _, line := range sec[start:] {
			if !strings.ContainsRune(order, rune(line[0])) {
				return nil, fmt.Errorf("%w: line type %q not allowed here", ErrMalformedSDP, line[0])
			}
		}
	}
	return out.Bytes(), nil
}

// checkSDP refuses what the relay cannot use: no connection address for a stream that is used.
func checkSDP(sd *sdp.SessionDescription) error {
	for _, m := range sd.MediaDescriptions {
		if m.MediaName.Port.Value == 0 {
			continue
		}
		if m.MediaName.Port.Value < 0 || m.MediaName.Port.Value > 65535 {
			return fmt.Errorf("%w: port %d", ErrMalformedSDP, m.MediaName.Port.Value)
		}
		if connection(sd, m) == nil {
			return fmt.Errorf("%w: no c= line for the %s stream", ErrMalformedSDP, m.MediaName.Media)
		}
	}
	return nil
}

func connection(sd *sdp.SessionDescription, m *sdp.MediaDescription) *sdp.ConnectionInformation {
	c := m.ConnectionInformation
	if c == nil {
		c = sd.ConnectionInformation
	}
	if c == nil || c.Address == nil {
		return nil
	}
	return c
}

// Stream is what one side's description says about its audio stream.
type Stream struct {
	RTP       *net.UDPAddr // where the side wants RTP; nil when the stream is disabled (port 0)
	RTCP      *net.UDPAddr // where it wants RTCP (a=rtcp, RFC 3605, or port+1; RTP's with rtcp-mux)
	Mux       bool         // a=rtcp-mux (RFC 5761)
	Direction string       // sendrecv, sendonly, recvonly or inactive
	Index     int          // the m= line's position
}

// OnHold reports whether the stream carries no media toward the PBX or from it (a held call).
func (s Stream) OnHold() bool {
	return s.Direction != "sendrecv" || s.RTP == nil || s.RTP.IP.IsUnspecified()
}

// AudioStream returns the first audio stream of a description, and false when it has none.
func AudioStream(sd *sdp.SessionDescription) (Stream, bool) {
	for i, m := range sd.MediaDescriptions {
		if m.MediaName.Media != "audio" {
			continue
		}
		st := Stream{Index: i, Direction: direction(sd, m)}
		if m.MediaName.Port.Value == 0 {
			return st, true
		}
		c := connection(sd, m)
		ip := net.ParseIP(strings.TrimSpace(c.Address.Address))
		if ip == nil {
			// A host name: not resolved (it would block, and phones send addresses); treat as unusable.
			ip = net.IPv4zero
		}
		port := m.MediaName.Port.Value
		st.RTP = &net.UDPAddr{IP: ip, Port: port}
		st.RTCP = &net.UDPAddr{IP: ip, Port: port + 1}
		if _, ok := m.Attribute("rtcp-mux"); ok {
			st.Mux = true
			st.RTCP = st.RTP
		} else if v, ok := m.Attribute("rtcp"); ok {
			f := strings.Fields(v)
			if p, err := strconv.Atoi(first(f)); err == nil && p > 0 && p < 65536 {
				st.RTCP = &net.UDPAddr{IP: ip, Port: p}
				if len(f) == 4 {
					if rip := net.ParseIP(f[3]); rip != nil {
						st.RTCP.IP = rip
					}
				}
			}
		}
		return st, true
	}
	return Stream{}, false
}

func first(f []string) string {
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

func direction(sd *sdp.SessionDescription, m *sdp.MediaDescription) string {
	for _, d := range []string{"sendrecv", "sendonly", "recvonly", "inactive"} {
		if _, ok := m.Attribute(d); ok {
			return d
		}
	}
	for _, a := range sd.Attributes {
		switch a.Key {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			return a.Key
		}
	}
	return "sendrecv"
}

// Rewrite makes the description the other side sees: the audio stream's address becomes ip and
// port (the PBX's relay), its codecs are filtered to allowed (case-insensitive names), ICE and
// address-revealing attributes are dropped, and every other stream is disabled (port 0): the
// relay carries one audio stream. The origin's address becomes ip too, so nothing of the side's
// network shows. An audio stream left with no codec is ErrNoCodec.
func Rewrite(sd *sdp.SessionDescription, ip net.IP, port int, allowed []string) ([]byte, error) {
	if len(allowed) == 0 {
		allowed = DefaultCodecs
	}
	addrType := "IP4"
	if ip.To4() == nil {
		addrType = "IP6"
	}
	conn := &sdp.ConnectionInformation{NetworkType: "IN", AddressType: addrType, Address: &sdp.Address{Address: ip.String()}}
	out := *sd
	out.Origin.UnicastAddress, out.Origin.AddressType, out.Origin.NetworkType = ip.String(), addrType, "IN"
	out.ConnectionInformation = conn
	out.Attributes = filterAttrs(sd.Attributes, nil)
	out.MediaDescriptions = nil
	audio := false
	for _, m := range sd.MediaDescriptions {
		nm := *m
		nm.MediaName.Protos = append([]string(nil), m.MediaName.Protos...)
		nm.ConnectionInformation = nil
		if m.MediaName.Media != "audio" || audio || m.MediaName.Port.Value == 0 {
			// Disabled: port 0 keeps the m= line count of the offer/answer (RFC 3264 §6).
			nm.MediaName.Port = sdp.RangedPort{Value: 0}
			nm.Attributes = nil
			nm.Bandwidth = nil
			if len(nm.MediaName.Formats) == 0 {
				nm.MediaName.Formats = []string{"0"}
			}
			out.MediaDescriptions = append(out.MediaDescriptions, &nm)
			continue
		}
		audio = true
		keep := map[string]bool{}
		var formats []string
		for _, f := range m.MediaName.Formats {
			if allowedCodec(codecName(m, f), allowed) {
				keep[f] = true
				formats = append(formats, f)
			}
		}
		if len(formats) == 0 || onlyEvents(m, formats) {
			return nil, ErrNoCodec
		}
		nm.MediaName.Formats = formats
		nm.MediaName.Port = sdp.RangedPort{Value: port}
		nm.Attributes = filterAttrs(m.Attributes, keep)
		out.MediaDescriptions = append(out.MediaDescriptions, &nm)
	}
	if !audio {
		return nil, ErrNoCodec
	}
	b, err := out.Marshal()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedSDP, err)
	}
	return b, nil
}

// codecName returns the encoding name of payload type f: from its rtpmap, or the static table.
func codecName(m *sdp.MediaDescription, f string) string {
	for _, a := range m.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		pt, rest, ok := strings.Cut(a.Value, " ")
		if ok && pt == f {
			name, _, _ := strings.Cut(rest, "/")
			return name
		}
	}
	return staticCodecs[f]
}

func allowedCodec(name string, allowed []string) bool {
	for _, a := range allowed {
		if strings.EqualFold(a, name) {
			return true
		}
	}
	return false
}

// onlyEvents reports whether the formats kept are only DTMF events and comfort noise: no codec
// that carries speech.
func onlyEvents(m *sdp.MediaDescription, formats []string) bool {
	for _, f := range formats {
		switch strings.ToLower(codecName(m, f)) {
		case "telephone-event", "cn":
		default:
			return false
		}
	}
	return true
}

// dropped attributes reveal addresses or belong to transports the relay does not speak (ICE,
// DTLS, the side's own RTCP port).
var dropped = map[string]bool{"candidate": true, "ice-ufrag": true, "ice-pwd": true, "ice-options": true,
	"ice-lite": true, "end-of-candidates": true, "remote-candidates": true, "rtcp": true,
	"fingerprint": true, "setup": true}

// filterAttrs drops address-revealing attributes and, when keep is given, the rtpmap/fmtp/rtcp-fb
// lines of payload types not kept.
func filterAttrs(attrs []sdp.Attribute, keep map[string]bool) []sdp.Attribute {
	var out []sdp.Attribute
	for _, a := range attrs {
		if dropped[a.Key] {
			continue
		}
		if keep != nil && (a.Key == "rtpmap" || a.Key == "fmtp" || a.Key == "rtcp-fb") {
			pt, _, _ := strings.Cut(a.Value, " ")
			if pt != "*" && !keep[pt] {
				continue
			}
		}
		out = append(out, a)
	}
	return out
}

// payloadType is a format of an audio stream: its number, codec name and RTP clock rate.
type payloadType struct {
	pt    uint8
	name  string
	clock uint32
}

// payloadTypes lists the formats of a description's audio streams, with the clock rate of their
// rtpmap (static payload types of RFC 3551 without one: 8000, which is every static audio type
// pbxkit allows).
func payloadTypes(sd *sdp.SessionDescription) []payloadType {
	var out []payloadType
	for _, m := range sd.MediaDescriptions {
		if m.MediaName.Media != "audio" {
			continue
		}
		for _, f := range m.MediaName.Formats {
			pt, err := strconv.Atoi(f)
			if err != nil || pt < 0 || pt > 127 {
				continue
			}
			out = append(out, payloadType{pt: uint8(pt), name: codecName(m, f), clock: clockRate(m, f)})
		}
	}
	return out
}

// clockRate reads the clock rate of format f from its rtpmap ("opus/48000/2"); 8000 without.
func clockRate(m *sdp.MediaDescription, f string) uint32 {
	for _, a := range m.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		pt, rest, ok := strings.Cut(a.Value, " ")
		if !ok || pt != f {
			continue
		}
		_, rate, _ := strings.Cut(rest, "/")
		rate, _, _ = strings.Cut(rate, "/")
		if n, err := strconv.ParseUint(rate, 10, 32); err == nil && n > 0 {
			return uint32(n)
		}
	}
	return 8000
}
