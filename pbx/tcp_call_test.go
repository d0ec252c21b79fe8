package pbx_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/pbx"
)

// TestCallToPhoneOnTCP: extension 200 registers over TCP and keeps its connection; the call from
// a UDP caller reaches it over that same connection (no new connection, no UDP), and the call
// is set up and torn down as over UDP.
func TestCallToPhoneOnTCP(t *testing.T) {
	tp, caller, _ := callPBX(t, pbx.Config{}, 0)
	phone := b2buatest.NewTCPPhone(t, tp.TCPAddr().String())
	local := phone.Addr()
	phone.Send(fmt.Sprintf("REGISTER sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK-tcpreg\r\nMax-Forwards: 70\r\n"+
		"From: <sip:200@pbx.test>;tag=r1\r\nTo: <sip:200@pbx.test>\r\nCall-ID: tcpreg@test\r\nCSeq: 1 REGISTER\r\n"+
		"Contact: <sip:200@%s;transport=tcp>\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n", local, local))
	if res, ok := phone.RecvMsg(b2buatest.Wait).(*sip.Response); !ok || res.StatusCode != 200 {
		t.Fatalf("REGISTER over TCP: %v", res)
	}
	bs, err := tp.store.Bindings(context.Background(), "200")
	if err != nil || len(bs) != 1 || bs[0].Transport != "tcp" {
		t.Fatalf("binding %+v %v", bs, err)
	}

	msg, inv := invite(caller)
	caller.Send(msg)
	b := phone.WaitRequest(sip.INVITE)
	if b.Via().Transport != "TCP" {
		t.Fatalf("INVITE to the TCP phone with Via transport %s", b.Via().Transport)
	}
	phone.Respond(b, 180, "Ringing", "")
	caller.WaitResponse(180)
	phone.Respond(b, 200, "OK", calleeSDP)
	ok := caller.WaitResponse(200)
	phone.WaitRequest(sip.ACK)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
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
	caller.Send(msg)
	caller.WaitResponse(503)
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
	caller.Send(msg)
	caller.WaitResponse(480)
	waitIdle(t, tp)
}
