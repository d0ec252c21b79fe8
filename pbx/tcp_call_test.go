package pbx_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/pbx"
)

// tcpPhone is a phone on one TCP connection to the PBX, as phones registered over TCP keep one.
type tcpPhone struct {
	t      *testing.T
	conn   net.Conn
	msgs   chan sip.Message
	closed chan struct{}
}

func dialTCPPhone(t *testing.T, addr string) *tcpPhone {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpPhone{t: t, conn: conn, msgs: make(chan sip.Message, 16), closed: make(chan struct{})}
	go func() { // read and frame the stream
		defer close(p.closed)
		parser := sip.NewParser().NewSIPStream()
		buf := make([]byte, 65535)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			if err := parser.ParseSIPStream(buf[:n], func(m sip.Message) { p.msgs <- m }); err != nil && !errors.Is(err, sip.ErrParseSipPartial) {
				return
			}
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-p.closed
	})
	return p
}

func (p *tcpPhone) send(msg string) {
	p.t.Helper()
	if _, err := p.conn.Write([]byte(msg)); err != nil {
		p.t.Fatal(err)
	}
}

func (p *tcpPhone) next() sip.Message {
	p.t.Helper()
	select {
	case m := <-p.msgs:
		return m
	case <-time.After(5 * time.Second):
		p.t.Fatal("nothing from the PBX within 5 s")
	}
	return nil
}

func (p *tcpPhone) waitRequest(method sip.RequestMethod) *sip.Request {
	p.t.Helper()
	for {
		if r, ok := p.next().(*sip.Request); ok && r.Method == method {
			return r
		}
	}
}

func (p *tcpPhone) respond(req *sip.Request, code int, reason, body string) {
	p.t.Helper()
	res := sip.NewResponseFromRequest(req, code, reason, []byte(body))
	if _, has := req.To().Params.Get("tag"); !has {
		res.To().Params.Add("tag", "tcp-phone")
	}
	res.AppendHeader(sip.NewHeader("Contact", "<sip:200@"+p.conn.LocalAddr().String()+";transport=tcp>"))
	if body != "" {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	p.send(res.String())
}

// TestCallToPhoneOnTCP: extension 200 registers over TCP and keeps its connection; the call from
// a UDP caller reaches it over that same connection (no new connection, no UDP), and the call
// is set up and torn down as over UDP.
func TestCallToPhoneOnTCP(t *testing.T) {
	tp, caller, _ := callPBX(t, pbx.Config{}, 0)
	phone := dialTCPPhone(t, tp.TCPAddr().String())
	local := phone.conn.LocalAddr().String()
	phone.send(fmt.Sprintf("REGISTER sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK-tcpreg\r\nMax-Forwards: 70\r\n"+
		"From: <sip:200@pbx.test>;tag=r1\r\nTo: <sip:200@pbx.test>\r\nCall-ID: tcpreg@test\r\nCSeq: 1 REGISTER\r\n"+
		"Contact: <sip:200@%s;transport=tcp>\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n", local, local))
	if res, ok := phone.next().(*sip.Response); !ok || res.StatusCode != 200 {
		t.Fatalf("REGISTER over TCP: %v", res)
	}
	bs, err := tp.store.Bindings(context.Background(), "200")
	if err != nil || len(bs) != 1 || bs[0].Transport != "tcp" {
		t.Fatalf("binding %+v %v", bs, err)
	}

	msg, inv := invite(caller)
	caller.send(msg)
	b := phone.waitRequest(sip.INVITE)
	if b.Via().Transport != "TCP" {
		t.Fatalf("INVITE to the TCP phone with Via transport %s", b.Via().Transport)
	}
	phone.respond(b, 180, "Ringing", "")
	caller.waitResponse(180)
	phone.respond(b, 200, "OK", calleeSDP)
	ok := caller.waitResponse(200)
	phone.waitRequest(sip.ACK)
	caller.send(caller.inDialog("ACK", inv, ok, 1))
	hangUp(t, tp, caller, phone, inv, ok, 2)
}

// TestTCPPhoneGoneIsUnregistered: a phone registered over TCP goes away (its connection closes and
// nothing listens at its address any more). The next call to it finds the connection failing:
// the caller gets 503 and the registration is removed, so later calls are not sent to it again
// (480, not registered).
func TestTCPPhoneGoneIsUnregistered(t *testing.T) {
	tp, caller, _ := callPBX(t, pbx.Config{}, 0)
	phone := b2buatest.NewTCPPhone(t, tp.TCPAddr().String())
	local := phone.Addr()
	res := phone.Do(fmt.Sprintf("REGISTER sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK-gone\r\nMax-Forwards: 70\r\n"+
		"From: <sip:200@pbx.test>;tag=r1\r\nTo: <sip:200@pbx.test>\r\nCall-ID: tcpgone@test\r\nCSeq: 1 REGISTER\r\n"+
		"Contact: <sip:200@%s;transport=tcp>\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n", local, local))
	if res.StatusCode != 200 {
		t.Fatalf("REGISTER over TCP: %d", res.StatusCode)
	}
	phone.Close()

	msg, _ := invite(caller)
	caller.send(msg)
	caller.waitResponse(503)
	deadline := time.Now().Add(5 * time.Second)
	for {
		bs, err := tp.store.Bindings(context.Background(), "200")
		if err != nil {
			t.Fatal(err)
		}
		if len(bs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dead phone is still registered: %+v", bs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(tp.logs.String(), "registration removed: its connection failed") {
		t.Fatal("the removal was not logged")
	}
	msg, _ = invite(caller)
	caller.send(msg)
	caller.waitResponse(480)
	waitIdle(t, tp)
}
