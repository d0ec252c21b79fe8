package b2bua

import (
	"bytes"
	"strings"
)

// Answers the PBX writes itself when two offers meet (pickup: the caller's INVITE offered its
// session to the phones that rang, the picker's INVITE offers its own). Neither side can be
// re-INVITEd before it is answered, so each gets an answer built from the other's offer
// (RFC 3264 §6): the other side's address and port, and the codecs both offered, with the payload
// type numbers of the side that receives them. Each side then sends what the other asked for,
// where the other listens. With the media relay both offers have already been rewritten to name
// the PBX's ports, so each side is answered with the PBX's port facing it.

// sdpSection is one part of a description: the session part or one m= section, as lines.
type sdpSection struct {
	lines []string
}

// splitSDP cuts a description into its session part and its m= sections, lines without breaks.
func splitSDP(body []byte) (session sdpSection, media []sdpSection) {
	cur := &session
	for _, l := range strings.Split(strings.ReplaceAll(string(body), "\r\n", "\n"), "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if strings.HasPrefix(l, "m=") {
			media = append(media, sdpSection{})
			cur = &media[len(media)-1]
		}
		cur.lines = append(cur.lines, l)
	}
	return session, media
}

// mline is an m= line: media type, port, protocol and formats.
type mline struct {
	kind, port, proto string
	formats           []string
}

func (s sdpSection) mline() (mline, bool) {
	if len(s.lines) == 0 {
		return mline{}, false
	}
	f := strings.Fields(strings.TrimPrefix(s.lines[0], "m="))
	if len(f) < 3 {
		return mline{}, false
	}
	return mline{kind: f[0], port: f[1], proto: f[2], formats: f[3:]}, true
}

// staticCodecs names the static RTP payload types phones use (RFC 3551 §6).
var staticCodecs = map[string]string{"0": "pcmu/8000", "3": "gsm/8000", "4": "g723/8000", "8": "pcma/8000",
	"9": "g722/8000", "13": "cn/8000", "18": "g729/8000"}

// codec names format f of the section: its rtpmap's encoding and clock rate, lower case.
func (s sdpSection) codec(f string) string {
	prefix := "a=rtpmap:" + f + " "
	for _, l := range s.lines {
		if strings.HasPrefix(l, prefix) {
			enc := strings.ToLower(strings.TrimSpace(l[len(prefix):]))
			if parts := strings.Split(enc, "/"); len(parts) >= 2 {
				return parts[0] + "/" + parts[1]
			}
			return enc
		}
	}
	return staticCodecs[f]
}

// direction returns the section's direction attribute, or "sendrecv".
func (s sdpSection) direction() string {
	for _, l := range s.lines {
		switch l {
		case "a=sendonly", "a=recvonly", "a=inactive", "a=sendrecv":
			return l[2:]
		}
	}
	return ""
}

// answerDirection is the direction that answers an offer's (RFC 3264 §6.1).
func answerDirection(offer string) string {
	switch offer {
	case "sendonly":
		return "recvonly"
	case "recvonly":
		return "sendonly"
	case "inactive":
		return "inactive"
	}
	return "sendrecv"
}

// isDirection reports whether l is a direction attribute.
func isDirection(l string) bool {
	switch l {
	case "a=sendonly", "a=recvonly", "a=inactive", "a=sendrecv":
		return true
	}
	return false
}

// formatAttr reports whether l is an attribute of one payload format (rtpmap, fmtp, rtcp-fb) and
// which.
func formatAttr(l string) (string, bool) {
	for _, p := range []string{"a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"} {
		if strings.HasPrefix(l, p) {
			f, _, _ := strings.Cut(l[len(p):], " ")
			return f, true
		}
	}
	return "", false
}

// answerFrom answers offer with the endpoint other describes (other is itself an offer, from the
// side the answer connects to). Each m= section of offer is answered by the first unused section
// of other of the same media type with codecs in common, or refused with port 0. Without an
// accepted audio stream it fails with 488.
func answerFrom(offer, other []byte) ([]byte, error) {
	_, offered := splitSDP(offer)
	session, theirs := splitSDP(other)
	if len(offered) == 0 || len(theirs) == 0 {
		return nil, &StatusError{Code: 488, Reason: "pickup needs a session description on both sides"}
	}
	var b bytes.Buffer
	for _, l := range session.lines {
		if !isDirection(l) {
			b.WriteString(l + "\r\n")
		}
	}
	used := make([]bool, len(theirs))
	audio := false
	for _, o := range offered {
		om, ok := o.mline()
		if !ok {
			return nil, &StatusError{Code: 400, Reason: "malformed m= line"}
		}
		if answerSection(&b, o, om, theirs, used) && om.kind == "audio" {
			audio = true
		}
	}
	if !audio {
		return nil, &StatusError{Code: 488, Reason: "the two sides have no audio codec in common"}
	}
	return b.Bytes(), nil
}

// answerSection writes the answer to one offered section and reports whether it was accepted.
func answerSection(b *bytes.Buffer, o sdpSection, om mline, theirs []sdpSection, used []bool) bool {
	for i, t := range theirs {
		tm, ok := t.mline()
		if used[i] || !ok || tm.kind != om.kind || tm.port == "0" {
			continue
		}
		keep := common(o, om, t, tm)
		if len(keep) == 0 {
			continue
		}
		used[i] = true
		b.WriteString("m=" + tm.kind + " " + tm.port + " " + tm.proto + " " + strings.Join(keep, " ") + "\r\n")
		kept := map[string]bool{}
		for _, f := range keep {
			kept[f] = true
		}
		for _, l := range t.lines[1:] {
			if f, isFormat := formatAttr(l); isDirection(l) || isFormat && !kept[f] {
				continue
			}
			b.WriteString(l + "\r\n")
		}
		b.WriteString("a=" + answerDirection(o.direction()) + "\r\n")
		return true
	}
	format := "0"
	if len(om.formats) > 0 {
		format = om.formats[0]
	}
	b.WriteString("m=" + om.kind + " 0 " + om.proto + " " + format + "\r\n")
	return false
}

// common returns the formats of their section (in its numbering and order) whose codec the
// offered section has too.
func common(o sdpSection, om mline, t sdpSection, tm mline) []string {
	offered := map[string]bool{}
	for _, f := range om.formats {
		if name := o.codec(f); name != "" {
			offered[name] = true
		}
	}
	var keep []string
	for _, f := range tm.formats {
		if name := t.codec(f); name != "" && offered[name] {
			keep = append(keep, f)
		}
	}
	return keep
}
