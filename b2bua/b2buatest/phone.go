package b2buatest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Wait is how long a phone waits for what it expects before the test fails.
const Wait = 5 * time.Second

// Phone is a SIP endpoint driven by a test: over UDP it sends to one address (the PBX) from a
// socket of its own; over TCP or TLS it keeps one connection to the PBX, as registered phones do.
type Phone struct {
	t         testing.TB
	transport string
	udp       *net.UDPConn
	to        *net.UDPAddr
	tcp       net.Conn
	msgs      chan sip.Message // TCP: messages framed by the reader
	closed    chan struct{}
}

// NewPhone returns a UDP phone on 127.0.0.1 that sends to the PBX at to; it closes when the test
// ends.
func NewPhone(t testing.TB, to *net.UDPAddr) *Phone {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &Phone{t: t, transport: "udp", udp: conn, to: to}
}

// NewTCPPhone returns a phone with one TCP connection to the PBX at addr; it closes when the test
// ends.
func NewTCPPhone(t testing.TB, addr string) *Phone {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, Wait)
	if err != nil {
		t.Fatal(err)
	}
	p := &Phone{t: t, transport: "tcp", tcp: conn, msgs: make(chan sip.Message, 64), closed: make(chan struct{})}
	go p.readStream()
	t.Cleanup(func() {
		conn.Close()
		<-p.closed
	})
	return p
}

// NewTLSPhone returns a phone with one TLS connection to the PBX at addr, the handshake done
// with cfg (its RootCAs and ServerName check the PBX's certificate); it closes when the test
// ends. Its Via and Contact say TLS.
func NewTLSPhone(t testing.TB, addr string, cfg *tls.Config) *Phone {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: Wait}, "tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &Phone{t: t, transport: "tls", tcp: conn, msgs: make(chan sip.Message, 64), closed: make(chan struct{})}
	go p.readStream()
	t.Cleanup(func() {
		conn.Close()
		<-p.closed
	})
	return p
}

// readStream frames the TCP (or TLS) stream into messages.
func (p *Phone) readStream() {
	defer close(p.closed)
	parser := sip.NewParser().NewSIPStream()
	buf := make([]byte, 65535)
	for {
		n, err := p.tcp.Read(buf)
		if err != nil {
			return
		}
		err = parser.ParseSIPStream(buf[:n], func(m sip.Message) {
			select {
			case p.msgs <- m:
			default: // a test that stopped reading: drop
			}
		})
		if err != nil && !errors.Is(err, sip.ErrParseSipPartial) {
			return
		}
	}
}

// Transport is "udp", "tcp" or "tls".
func (p *Phone) Transport() string { return p.transport }

// Addr is the phone's own address ("ip:port").
func (p *Phone) Addr() string {
	if p.tcp != nil {
		return p.tcp.LocalAddr().String()
	}
	return p.udp.LocalAddr().String()
}

// Contact is the phone's contact URI for user.
func (p *Phone) Contact(user string) string {
	uri := "sip:" + user + "@" + p.Addr()
	if p.transport != "udp" {
		uri += ";transport=" + p.transport
	}
	return uri
}

// Close closes the phone's socket or connection: the phone has gone away.
func (p *Phone) Close() {
	if p.tcp != nil {
		p.tcp.Close()
		return
	}
	p.udp.Close()
}

// Redirect makes a UDP phone send to another server from now on (a PBX node other than the one
// it registered with, which calls it too).
func (p *Phone) Redirect(to *net.UDPAddr) { p.to = to }

// Send writes msg to the PBX.
func (p *Phone) Send(msg string) {
	p.t.Helper()
	var err error
	if p.tcp != nil {
		_, err = p.tcp.Write([]byte(msg))
	} else {
		_, err = p.udp.WriteToUDP([]byte(msg), p.to)
	}
	if err != nil {
		p.t.Fatal(err)
	}
}

// RecvRaw returns the next message with its bytes as they arrived (over TCP: as framed) and the
// address it came from, or nil after timeout.
func (p *Phone) RecvRaw(timeout time.Duration) (sip.Message, []byte, net.Addr) {
	p.t.Helper()
	if p.tcp != nil {
		select {
		case m := <-p.msgs:
			return m, []byte(m.String()), p.tcp.RemoteAddr()
		case <-time.After(timeout):
			return nil, nil, nil
		}
	}
	buf := make([]byte, 65535)
	p.udp.SetReadDeadline(time.Now().Add(timeout))
	n, from, err := p.udp.ReadFromUDP(buf)
	if err != nil {
		return nil, nil, nil
	}
	msg, err := sip.ParseMessage(buf[:n])
	if err != nil {
		p.t.Fatalf("unparseable message %q: %v", buf[:n], err)
	}
	return msg, buf[:n], from
}

// RecvMsgFrom returns the next message of any kind with the address it came from, or nil after
// timeout.
func (p *Phone) RecvMsgFrom(timeout time.Duration) (sip.Message, net.Addr) {
	p.t.Helper()
	m, _, from := p.RecvRaw(timeout)
	return m, from
}

// RecvMsg returns the next message of any kind, or nil after timeout.
func (p *Phone) RecvMsg(timeout time.Duration) sip.Message {
	p.t.Helper()
	m, _ := p.RecvMsgFrom(timeout)
	return m
}

// Recv returns the next message if it is a response, or nil after timeout; a request fails the
// test.
func (p *Phone) Recv(timeout time.Duration) *sip.Response {
	p.t.Helper()
	res, _ := p.RecvResponseRaw(timeout)
	return res
}

// RecvResponseRaw is Recv that also returns the response's bytes as they arrived.
func (p *Phone) RecvResponseRaw(timeout time.Duration) (*sip.Response, []byte) {
	p.t.Helper()
	m, raw, _ := p.RecvRaw(timeout)
	if m == nil {
		return nil, nil
	}
	res, ok := m.(*sip.Response)
	if !ok {
		p.t.Fatalf("got a request, want a response: %s", m.String())
	}
	return res, raw
}

// Do sends msg and returns the first response other than 100.
func (p *Phone) Do(msg string) *sip.Response {
	p.t.Helper()
	res, _ := p.DoRaw(msg)
	return res
}

// DoRaw is Do that also returns the response's bytes as they arrived.
func (p *Phone) DoRaw(msg string) (*sip.Response, []byte) {
	p.t.Helper()
	p.Send(msg)
	deadline := time.Now().Add(Wait)
	for time.Now().Before(deadline) {
		res, raw := p.RecvResponseRaw(time.Until(deadline))
		if res == nil {
			break
		}
		if res.StatusCode != 100 {
			return res, raw
		}
	}
	p.t.Fatalf("no response to:\n%s", msg)
	return nil, nil
}

// WaitRequest returns the next request with method, skipping anything else (retransmitted
// responses, other requests), or fails the test.
func (p *Phone) WaitRequest(method sip.RequestMethod) *sip.Request {
	p.t.Helper()
	req, _ := p.WaitRequestFrom(method)
	return req
}

// WaitRequestFrom is WaitRequest that also returns the address the request came from.
func (p *Phone) WaitRequestFrom(method sip.RequestMethod) (*sip.Request, net.Addr) {
	p.t.Helper()
	deadline := time.Now().Add(Wait)
	for time.Now().Before(deadline) {
		m, from := p.RecvMsgFrom(time.Until(deadline))
		if req, ok := m.(*sip.Request); ok && req.Method == method {
			return req, from
		}
	}
	p.t.Fatalf("no %s within %v", method, Wait)
	return nil, nil
}

// WaitResponse returns the next response with code (skipping others), or fails the test.
func (p *Phone) WaitResponse(code int) *sip.Response {
	p.t.Helper()
	deadline := time.Now().Add(Wait)
	var got []int
	for time.Now().Before(deadline) {
		if res, ok := p.RecvMsg(time.Until(deadline)).(*sip.Response); ok {
			if res.StatusCode == code {
				return res
			}
			got = append(got, res.StatusCode)
		}
	}
	p.t.Fatalf("no %d within %v (got %v)", code, Wait, got)
	return nil
}

// Respond answers req as a phone would, with the To tag "callee-tag" and its own Contact.
func (p *Phone) Respond(req *sip.Request, code int, reason string, body string) {
	p.t.Helper()
	p.RespondWith(req, code, reason, body)
}

// RespondWith is Respond with extra header lines.
func (p *Phone) RespondWith(req *sip.Request, code int, reason, body string, extra ...string) {
	p.t.Helper()
	res := sip.NewResponseFromRequest(req, code, reason, []byte(body))
	if _, has := req.To().Params.Get("tag"); !has && code > 100 {
		res.To().Params.Add("tag", "callee-tag")
	}
	res.AppendHeader(sip.NewHeader("Contact", "<"+p.Contact("callee")+">"))
	if body != "" {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	for _, line := range extra {
		name, value, _ := strings.Cut(line, ":")
		res.AppendHeader(sip.NewHeader(strings.TrimSpace(name), strings.TrimSpace(value)))
	}
	p.Send(res.String())
}

// AcceptCancel is a ringing phone taking the PBX's CANCEL of inv: 200 to the CANCEL, 487 to the
// INVITE.
func (p *Phone) AcceptCancel(inv *sip.Request) {
	p.t.Helper()
	p.Respond(p.WaitRequest(sip.CANCEL), 200, "OK", "")
	p.Respond(inv, 487, "Request Terminated", "")
}

// InDialog builds a request in the dialog a 2xx (ok) to the phone's INVITE inv set up.
func (p *Phone) InDialog(method string, inv *sip.Request, ok *sip.Response, cseq int) string {
	return p.InDialogWith(method, inv, ok, cseq, "")
}

// InDialogWith is InDialog with extra header lines (each ending in CRLF) and a body; a body
// gets Content-Type application/sdp unless the lines give one.
func (p *Phone) InDialogWith(method string, inv *sip.Request, ok *sip.Response, cseq int, lines string, body ...string) string {
	target := remoteTarget(ok)
	b := strings.Join(body, "")
	if b != "" && !strings.Contains(strings.ToLower(lines), "content-type:") {
		lines += "Content-Type: application/sdp\r\n"
	}
	return fmt.Sprintf("%s %s SIP/2.0\r\nVia: SIP/2.0/%s %s;branch=z9hG4bK-%d;rport\r\nMax-Forwards: 70\r\n"+
		"From: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %d %s\r\n%sContent-Length: %d\r\n\r\n%s",
		method, target, strings.ToUpper(p.transport), p.Addr(), rand.Int64(), inv.From().Value(), ok.To().Value(),
		inv.CallID().Value(), cseq, method, lines, len(b), b)
}

// InDialogAsCallee builds a request the callee sends in the dialog the PBX's INVITE inv set up
// (the callee answered it with Respond: To tag "callee-tag").
func (p *Phone) InDialogAsCallee(method string, inv *sip.Request, cseq int, lines string, body ...string) string {
	b := strings.Join(body, "")
	if b != "" && !strings.Contains(strings.ToLower(lines), "content-type:") {
		lines += "Content-Type: application/sdp\r\n"
	}
	target := remoteTarget(inv)
	return fmt.Sprintf("%s %s SIP/2.0\r\nVia: SIP/2.0/%s %s;branch=z9hG4bK-%d;rport\r\nMax-Forwards: 70\r\n"+
		"From: %s;tag=callee-tag\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %d %s\r\n%sContent-Length: %d\r\n\r\n%s",
		method, target, strings.ToUpper(p.transport), p.Addr(), rand.Int64(), inv.To().Value(), inv.From().Value(),
		inv.CallID().Value(), cseq, method, lines, len(b), b)
}

// remoteTarget is the Contact URI of a message.
func remoteTarget(m interface{ GetHeader(string) sip.Header }) string {
	h, ok := m.GetHeader("Contact").(*sip.ContactHeader)
	if !ok {
		return ""
	}
	return h.Address.String()
}

// Cancel is the phone's CANCEL of its INVITE inv (RFC 3261 §9.1: the INVITE's Via, From, To,
// Call-ID and CSeq number).
func Cancel(inv *sip.Request) string {
	return "CANCEL " + inv.Recipient.String() + " SIP/2.0\r\nVia: " + inv.Via().Value() + "\r\nMax-Forwards: 70\r\n" +
		"From: " + inv.From().Value() + "\r\nTo: " + inv.To().Value() + "\r\nCall-ID: " + inv.CallID().Value() + "\r\n" +
		fmt.Sprintf("CSeq: %d CANCEL\r\nContent-Length: 0\r\n\r\n", inv.CSeq().SeqNo)
}

// AckFinal acknowledges a final non-2xx answer res to the phone's INVITE inv: same transaction
// (RFC 3261 §17.1.1.3).
func (p *Phone) AckFinal(inv *sip.Request, res *sip.Response) {
	p.t.Helper()
	p.Send("ACK " + inv.Recipient.String() + " SIP/2.0\r\nVia: " + inv.Via().Value() + "\r\nMax-Forwards: 70\r\n" +
		"From: " + inv.From().Value() + "\r\nTo: " + res.To().Value() + "\r\nCall-ID: " + inv.CallID().Value() + "\r\n" +
		fmt.Sprintf("CSeq: %d ACK\r\nContent-Length: 0\r\n\r\n", inv.CSeq().SeqNo))
}

// RemoteTarget is the Contact URI of a message, "" without one.
func RemoteTarget(m interface{ GetHeader(string) sip.Header }) string { return remoteTarget(m) }
