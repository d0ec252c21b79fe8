package pbx_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// The example dialplans in examples/dialplans are run as users would run them.

func examplePBX(t *testing.T, name string, callees int) (*testPBX, *uaClient, []*uaClient) {
	t.Helper()
	return callPBX(t, pbx.Config{DialplanScript: filepath.Join("..", "examples", "dialplans", name)}, callees)
}

// dialFrom is dial with the caller's user part chosen.
func dialFrom(t *testing.T, c *uaClient, from, to string) []*sip.Response {
	t.Helper()
	msg := c.Build(reqSpec{Method: "INVITE", From: from, To: to, Headers: []string{
		"Contact: <sip:" + from + "@" + c.Addr() + ">", "Content-Type: application/sdp"}, Body: sdpBody})
	m, err := sip.ParseMessage([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	c.Send(msg)
	return awaitFinal(t, c, m.(*sip.Request), 10*time.Second)
}

func TestExampleBlacklist(t *testing.T) {
	tp, caller, _ := examplePBX(t, "blacklist.lua", 0)
	for _, tc := range []struct {
		from, to string
		want     int
	}{{"spam", "200", 603}, {"anonymous", "200", 433}, {"100", "999", 404}, {"100", "200", 480}} {
		if res := final(dialFrom(t, caller, tc.from, tc.to)); res.StatusCode != tc.want {
			t.Errorf("%s calling %s: got %d, want %d", tc.from, tc.to, res.StatusCode, tc.want)
		}
	}
	waitIdle(t, tp)
}

func TestExampleShortNumber(t *testing.T) {
	tp, caller, callees := examplePBX(t, "short-number.lua", 1)
	for to, want := range map[string]int{"12": 484, "1": 484, "abc": 404, "1234": 404} {
		if res := final(dialFrom(t, caller, "100", to)); res.StatusCode != want {
			t.Errorf("dialling %s: got %d, want %d", to, res.StatusCode, want)
		}
	}
	msg, _ := invite(caller)
	caller.Send(msg)
	b := callees[0].WaitRequest(sip.INVITE)
	callees[0].Respond(b, 486, "Busy Here", "")
	caller.WaitResponse(486)
	waitIdle(t, tp)
}

func TestExampleBusyForward(t *testing.T) {
	tp, caller, callees := examplePBX(t, "busy-forward.lua", 1)
	other := newClient(t, tp.addr)
	bind(t, tp, "201", other)
	ctx := context.Background()
	fwd := "201"
	if _, err := tp.store.UpdateExtension(ctx, "200", store.ExtensionPatch{ForwardBusy: &fwd}); err != nil {
		t.Fatal(err)
	}
	msg, inv := invite(caller)
	caller.Send(msg)
	b := callees[0].WaitRequest(sip.INVITE)
	callees[0].Respond(b, 486, "Busy Here", "")
	if r := caller.WaitResponse(181); !strings.Contains(header(r, "Diversion"), "user-busy") {
		t.Fatalf("181 with Diversion %q", header(r, "Diversion"))
	}
	f := other.WaitRequest(sip.INVITE)
	other.Respond(f, 603, "Decline", "")
	if res := final(awaitFinal(t, caller, inv, 5*time.Second)); res.StatusCode != 603 {
		t.Fatalf("got %d, want the forward target's 603", res.StatusCode)
	}
	waitIdle(t, tp)
	dnd := true
	if _, err := tp.store.UpdateExtension(ctx, "200", store.ExtensionPatch{DND: &dnd}); err != nil {
		t.Fatal(err)
	}
	if res := final(dialFrom(t, caller, "100", "200")); res.StatusCode != 603 {
		t.Fatalf("do not disturb: got %d, want 603", res.StatusCode)
	}
}

func TestExampleRingGroup(t *testing.T) {
	tp, caller, callees := examplePBX(t, "ring-group.lua", 1)
	team := []*uaClient{newClient(t, tp.addr), newClient(t, tp.addr), newClient(t, tp.addr)}
	for i, c := range team {
		bind(t, tp, []string{"201", "202", "203"}[i], c)
	}
	msg := caller.Build(reqSpec{Method: "INVITE", From: "100", To: "600", Headers: []string{
		"Contact: <sip:100@" + caller.Addr() + ">", "Content-Type: application/sdp"}, Body: sdpBody})
	m, _ := sip.ParseMessage([]byte(msg))
	inv := m.(*sip.Request)
	caller.Send(msg)
	for _, c := range team { // all three ring at once; all are busy
		b := c.WaitRequest(sip.INVITE)
		c.Respond(b, 486, "Busy Here", "")
	}
	caller.WaitResponse(181)
	b := callees[0].WaitRequest(sip.INVITE) // the fallback, 200
	callees[0].Respond(b, 200, "OK", calleeSDP)
	ok := caller.WaitResponse(200)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	hangUp(t, tp, caller, callees[0], inv, ok, 2)
}

func TestExampleOfficeHours(t *testing.T) {
	// Emergency numbers ring at any hour: 112 is no extension here, so 404 day and night.
	tp, caller, _ := examplePBX(t, "office-hours.lua", 0)
	if res := final(dialFrom(t, caller, "100", "112")); res.StatusCode != 404 {
		t.Fatalf("got %d, want 404", res.StatusCode)
	}
	// Any other number: 480 "Office Closed" at night, else routed (200 is not registered: 480).
	if res := final(dialFrom(t, caller, "100", "200")); res.StatusCode != 480 {
		t.Fatalf("got %d, want 480", res.StatusCode)
	}
	waitIdle(t, tp)
}

// TestExampleIVR: the auto attendant answers 500, takes "200#" as SIP INFO after its beep,
// connects the caller to 200 (the caller then hears 200), and "*" from the caller during the
// call hangs up through on_dtmf.
func TestExampleIVR(t *testing.T) {
	lo := freeEvenRange(t, 8)
	tp, caller, callees := callPBX(t, pbx.Config{RTPPortMin: lo, RTPPortMax: lo + 7,
		DialplanScript: filepath.Join("..", "examples", "dialplans", "ivr.lua")}, 1)
	callee := callees[0]
	callerRTP, calleeRTP := b2buatest.NewRTP(t), b2buatest.NewRTP(t)
	msg, inv := caller.Invite("100", "500", nil, callerRTP.SDP())
	caller.Send(msg)
	ok := caller.WaitResponse(200)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	callerRTP.WaitTone(1000, 5, b2buatest.Wait) // the prompt's beep
	cseq := caller.SendInfoDigits(inv, ok, 2, "200#")
	bInv := callee.WaitRequest(sip.INVITE)
	callee.Respond(bInv, 200, "OK", calleeRTP.SDP())
	callee.WaitRequest(sip.ACK)
	stop := calleeRTP.SendTone(b2buatest.MediaAddr(t, bInv.Body()), 900)
	defer stop()
	callerRTP.WaitTone(900, 10, b2buatest.Wait)
	stop()
	caller.Send(caller.InDialogWith("INFO", inv, ok, cseq, "Content-Type: application/dtmf-relay\r\n", "Signal=*\r\nDuration=160\r\n"))
	info := callee.WaitRequest(sip.INFO)
	callee.Respond(info, 200, "OK", "")
	for got := 0; got < 2; {
		switch m := caller.RecvMsg(b2buatest.Wait).(type) {
		case *sip.Request:
			if m.Method == sip.BYE {
				caller.Respond(m, 200, "OK", "")
				got++
			}
		case *sip.Response:
			if m.StatusCode == 200 && m.CSeq().MethodName == sip.INFO {
				got++
			}
		case nil:
			t.Fatal("no BYE after * in on_dtmf")
		}
	}
	callee.Respond(callee.WaitRequest(sip.BYE), 200, "OK", "")
	waitIdle(t, tp)
}
