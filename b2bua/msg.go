package b2bua

import (
	"strings"

	"github.com/emiago/sipgo/sip"
)

// dialogSide is one dialog of a call as this PBX sees it: enough to build requests inside it
// (RFC 3261 §12.2.1.1) and to send them where the peer can be reached.
type dialogSide struct {
	callID    string
	localURI  sip.Uri // our From in requests we send
	localTag  string
	remoteURI sip.Uri // their address-of-record: our To
	remoteTag string
	target    sip.Uri      // the peer's Contact: Request-URI of our requests
	routes    []sip.Header // Route headers from the route set
	dest      string       // "ip:port" to send to (the peer's source, RFC 3581); "" resolves target
	transport string
	cseq      uint32             // our last CSeq in this dialog
	contact   *sip.ContactHeader // the PBX's Contact in this dialog, with the dialog's transport
	origin    origin             // the o= line of the descriptions the PBX sends in this dialog
}

func (d *dialogSide) key() string { return dialogKey(d.callID, d.localTag, d.remoteTag) }

// id is the dialog as "Call-ID;local-tag;remote-tag", for logs and DialogIDs.
func (d *dialogSide) id() string { return d.callID + ";" + d.localTag + ";" + d.remoteTag }

// pbxContact is the PBX's Contact for a dialog over transport, at port: the transport parameter
// tells the peer to send its requests in the dialog (ACK, BYE, re-INVITE) over the same transport
// (RFC 3261 §19.1.1; without it the peer uses UDP). A dialog with a peer that used a sips: URI
// gets a sips: Contact (RFC 3261 §12.1.1, §26.2.2), which means TLS by itself: it carries no
// transport parameter (RFC 5630 §3.2 deprecates transport=tls).
func pbxContact(host string, port int, transport string, secure bool) *sip.ContactHeader {
	uri := sip.Uri{Scheme: "sip", Host: host, Port: port}
	switch t := strings.ToLower(transport); {
	case secure:
		uri.Scheme = "sips"
	case t != "" && t != "udp":
		uri.UriParams = sip.NewParams()
		uri.UriParams.Add("transport", t)
	}
	return &sip.ContactHeader{Address: uri}
}

// URITransport is the transport a request to uri goes over, lower case: its transport parameter,
// TLS for a sips: URI whatever that says (RFC 3261 §26.2.2: TLS on every hop; RFC 5630 §3.2:
// "sips:...;transport=tcp" is TLS over TCP), else UDP.
func URITransport(uri sip.Uri) string {
	if strings.EqualFold(uri.Scheme, "sips") {
		return "tls"
	}
	if uri.UriParams != nil {
		if t, ok := uri.UriParams.Get("transport"); ok && t != "" {
			return strings.ToLower(t)
		}
	}
	return "udp"
}

func dialogKey(callID, localTag, remoteTag string) string {
	return callID + "\x00" + localTag + "\x00" + remoteTag
}

// request builds an in-dialog request with the next CSeq (RFC 3261 §12.2.1.1).
func (d *dialogSide) request(method sip.RequestMethod, branchPrefix string) *sip.Request {
	d.cseq++
	return d.requestCSeq(method, d.cseq, branchPrefix)
}

// requestCSeq builds a request in the dialog with the given CSeq. The PBX's Contact address also
// goes into the Via; the Contact is sent as a header only where one belongs.
func (d *dialogSide) requestCSeq(method sip.RequestMethod, cseq uint32, branchPrefix string) *sip.Request {
	contact := d.contact
	req := sip.NewRequest(method, *d.target.Clone())
	req.SetTransport(strings.ToUpper(d.transport))
	if d.dest != "" {
		req.SetDestination(d.dest)
	}
	req.AppendHeader(newVia(d.transport, contact.Address, branchPrefix))
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	from := &sip.FromHeader{Address: *d.localURI.Clone()}
	from.Params.Add("tag", d.localTag)
	req.AppendHeader(from)
	to := &sip.ToHeader{Address: *d.remoteURI.Clone()}
	if d.remoteTag != "" {
		to.Params.Add("tag", d.remoteTag)
	}
	req.AppendHeader(to)
	cid := sip.CallIDHeader(d.callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: method})
	for _, r := range d.routes {
		req.AppendHeader(r)
	}
	if method != sip.ACK && method != sip.BYE && method != sip.CANCEL {
		req.AppendHeader(contact)
	}
	req.SetBody(nil)
	return req
}

// newVia is a Via for a request this PBX originates, naming the PBX's own address (where the
// answer must come back; sipgo leaves a Via it is given as it is) and asking for rport. Its branch
// carries the PBX's prefix, so the front door recognises the request if it ever comes back (482).
func newVia(transport string, self sip.Uri, branchPrefix string) *sip.ViaHeader {
	via := &sip.ViaHeader{
		ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: strings.ToUpper(transport),
		Host: self.Host, Port: self.Port,
	}
	via.Params.Add("branch", branchPrefix+sip.GenerateTagN(16))
	via.Params.Add("rport", "")
	return via
}

// cancelFor builds the CANCEL of an INVITE (RFC 3261 §9.1): same Request-URI, Call-ID, From, To,
// CSeq number and top Via (the branch ties it to the INVITE's transaction).
func cancelFor(inv *sip.Request) *sip.Request {
	c := sip.NewRequest(sip.CANCEL, *inv.Recipient.Clone())
	c.SetTransport(inv.Transport())
	c.SetDestination(inv.Destination())
	c.AppendHeader(sip.HeaderClone(inv.Via()))
	mf := sip.MaxForwardsHeader(70)
	c.AppendHeader(&mf)
	c.AppendHeader(sip.HeaderClone(inv.From()))
	c.AppendHeader(sip.HeaderClone(inv.To()))
	c.AppendHeader(sip.HeaderClone(inv.CallID()))
	c.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	for _, r := range inv.GetHeaders("Route") {
		c.AppendHeader(sip.HeaderClone(r))
	}
	c.SetBody(nil)
	return c
}

// remoteTargetOf returns the Contact URI of a message, if it has one.
func remoteTargetOf(m sip.Message) (sip.Uri, bool) {
	var hs []sip.Header
	switch v := m.(type) {
	case *sip.Request:
		hs = v.GetHeaders("Contact")
	case *sip.Response:
		hs = v.GetHeaders("Contact")
	}
	for _, h := range hs {
		if c, ok := h.(*sip.ContactHeader); ok {
			return *c.Address.Clone(), true
		}
	}
	return sip.Uri{}, false
}

// routeSet turns Record-Route headers into Route headers: in order for the UAS side, reversed
// for the UAC side (RFC 3261 §12.1.1, §12.1.2).
func routeSet(rr []sip.Header, reverse bool) []sip.Header {
	out := make([]sip.Header, 0, len(rr))
	for _, h := range rr {
		out = append(out, sip.NewHeader("Route", h.Value()))
	}
	if reverse {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out
}
