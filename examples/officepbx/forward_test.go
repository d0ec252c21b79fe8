package main

import (
	"context"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/internal/testenv"
)

// TestCLIForwardAlways: what officepbx ext set stores is what happens, with no dialplan: after
// `ext set 101 --forward-always 100`, a call to 101 reaches 100.
func TestCLIForwardAlways(t *testing.T) {
	db := testenv.SQLiteDSN(t)
	for _, args := range [][]string{
		{"ext", "add", "100", "--password", "pw100", "--db", db},
		{"ext", "add", "101", "--password", "pw101", "--db", db},
	} {
		if code, out, errs := officepbx(t, args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errs)
		}
	}
	addr := serveInTest(t, "--sip", "127.0.0.1:0", "--db", db, "--trust", "127.0.0.0/8")
	if code, out, errs := officepbx(t, "ext", "set", "101", "--forward-always", "100", "--db", db); code != 0 {
		t.Fatalf("ext set: exit %d\n%s%s", code, out, errs)
	}

	phone, caller := b2buatest.NewPhone(t, addr), b2buatest.NewPhone(t, addr)
	reg := phone.Do(phone.Build(b2buatest.Request{Method: "REGISTER", URI: "sip:pbx.test", From: "100", To: "100",
		Headers: []string{"Contact: <" + phone.Contact("100") + ">", "Expires: 3600"}}))
	if reg.StatusCode != 200 {
		t.Fatalf("REGISTER: %d %s", reg.StatusCode, reg.Reason)
	}
	msg, inv := caller.Invite("102", "101", nil)
	caller.Send(msg)
	b := phone.WaitRequest(sip.INVITE)
	if b.Recipient.User != "100" || !strings.Contains(b.GetHeader("Diversion").Value(), "<sip:101@") {
		t.Fatalf("100's phone got %s with Diversion %v", b.StartLine(), b.GetHeader("Diversion"))
	}
	caller.WaitResponse(181)
	phone.Respond(b, 200, "OK", b2buatest.CalleeSDP)
	ok := caller.WaitResponse(200)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	phone.WaitRequest(sip.ACK)
	b2buatest.HangUp(t, caller, phone, inv, ok, 2)

	// A change made while the PBX runs applies to the next call (issue 13 point 8): the PBX has
	// 100 and 101 in its cache, and sees the settings version move (checked every 0.1 s).
	if code, out, errs := officepbx(t, "ext", "set", "100", "--dnd", "on", "--db", db); code != 0 {
		t.Fatalf("ext set --dnd: exit %d\n%s%s", code, out, errs)
	}
	time.Sleep(200 * time.Millisecond)
	msg, inv = caller.Invite("102", "101", nil)
	caller.Send(msg)
	res := caller.WaitResponse(486)
	if res.CallID().Value() != inv.CallID().Value() {
		t.Fatalf("486 for another call: %s", res.CallID().Value())
	}
	caller.AckFinal(inv, res)
}

// serveInTest runs officepbx serve with args until the test ends and returns its UDP address.
func serveInTest(t *testing.T, args ...string) *net.UDPAddr {
	t.Helper()
	t.Chdir(t.TempDir())
	ctx, cancel := context.WithCancel(t.Context())
	logs := &b2buatest.LogBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, append([]string{"serve"}, args...), logs, logs) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d:\n%s", code, logs.String())
		}
	})
	listening := regexp.MustCompile(`msg="pbx listening" udp=(\S+)`)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if m := listening.FindStringSubmatch(logs.String()); m != nil {
			addr, err := net.ResolveUDPAddr("udp", m[1])
			if err != nil {
				t.Fatal(err)
			}
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve is not listening:\n%s", logs.String())
		}
	}
}
