package pbx

import (
	"encoding/xml"
	"slices"
	"strings"
)

// ContentTypeDialogInfo is the media type of dialog event package bodies (RFC 4235 §4).
const ContentTypeDialogInfo = "application/dialog-info+xml"

// Dialog states of RFC 4235 §3.7.1 that busy lamps show.
const (
	dialogTrying     = "trying"
	dialogEarly      = "early"
	dialogConfirmed  = "confirmed"
	dialogTerminated = "terminated"
)

// dialogState is one dialog of an extension as a busy lamp sees it: the extension's side of a
// call.
type dialogState struct {
	ID        string // opaque, per call: never the caller's Call-ID (topology hiding)
	Direction string // "initiator" (the extension called) or "recipient" (it was called)
	State     string
	Peer      string // the other party's user part, "" when unknown
}

// dialogInfo is the document of RFC 4235 §4.1:
//
//	<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="3" state="full"
//	             entity="sip:101@pbx.example">
//	  <dialog id="a1b2" direction="recipient">
//	    <state>early</state>
//	    <remote><identity>sip:100@pbx.example</identity></remote>
//	  </dialog>
//	</dialog-info>
//
// pbxkit always sends full state: a phone that missed a NOTIFY is right again with the next.
type dialogInfo struct {
	XMLName xml.Name        `xml:"urn:ietf:params:xml:ns:dialog-info dialog-info"`
	Version uint32          `xml:"version,attr"`
	State   string          `xml:"state,attr"`
	Entity  string          `xml:"entity,attr"`
	Dialogs []dialogElement `xml:"dialog"`
}

type dialogElement struct {
	ID        string       `xml:"id,attr"`
	Direction string       `xml:"direction,attr,omitempty"`
	State     string       `xml:"state"`
	Local     *participant `xml:"local,omitempty"`
	Remote    *participant `xml:"remote,omitempty"`
}

type participant struct {
	Identity string `xml:"identity"`
}

// dialogInfoBody renders the full-state document of extension ext at domain: dialogs sorted by
// ID, so that equal states give equal bodies.
func dialogInfoBody(version uint32, ext, domain string, dialogs []dialogState) []byte {
	doc := dialogInfo{Version: version, State: "full", Entity: userURI(ext, domain)}
	slices.SortFunc(dialogs, func(a, b dialogState) int { return strings.Compare(a.ID, b.ID) })
	for _, d := range dialogs {
		el := dialogElement{ID: d.ID, Direction: d.Direction, State: d.State,
			Local: &participant{Identity: userURI(ext, domain)}}
		if d.Peer != "" {
			el.Remote = &participant{Identity: userURI(d.Peer, domain)}
		}
		doc.Dialogs = append(doc.Dialogs, el)
	}
	out, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil { // cannot happen: every field is a string or a number
		return []byte(xml.Header)
	}
	return append([]byte(xml.Header), append(out, '\n')...)
}

// userURI is sip:user@domain, with the user part escaped as RFC 3261 §25.1 asks.
func userURI(user, domain string) string {
	var b strings.Builder
	b.WriteString("sip:")
	for i := 0; i < len(user); i++ {
		c := user[i]
		if isUserChar(c) {
			b.WriteByte(c)
			continue
		}
		const hexdigits = "0123456789ABCDEF"
		b.WriteByte('%')
		b.WriteByte(hexdigits[c>>4])
		b.WriteByte(hexdigits[c&0xf])
	}
	b.WriteString("@" + domain)
	return b.String()
}

// isUserChar: unreserved and user-unreserved characters of RFC 3261 §25.1.
func isUserChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("-_.!~*'()&=+$,;?/", c) >= 0
}
