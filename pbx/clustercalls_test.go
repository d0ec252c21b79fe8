package pbx_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// parkOn has caller call number on node tp, the phone of number answer and park the call with a
// blind transfer to 700; it returns the caller's INVITE and 200 and the slot the final NOTIFY
// names.
func parkOn(t *testing.T, tp *testPBX, caller, phone *uaClient, number string) (*sip.Request, *sip.Response, string) {
	t.Helper()
	msg, inv := caller.Invite("100", number, nil)
	caller.Send(msg)
	bInv := phone.WaitRequest(sip.INVITE)
	phone.Respond(bInv, 200, "OK", calleeSDP)
	ok := caller.WaitResponse(200)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	phone.WaitRequest(sip.ACK)
	phone.Send(phone.InDialogAsCallee("REFER", bInv, 5, "Contact: <"+phone.Contact(number)+">\r\nRefer-To: <sip:700@pbx.test>\r\n"))
	phone.WaitResponse(202)
	for {
		n := phone.WaitRequest(sip.NOTIFY)
		phone.Respond(n, 200, "OK", "")
		if strings.HasPrefix(header(n, "Subscription-State"), "terminated") {
			phone.Respond(phone.WaitRequest(sip.BYE), 200, "OK", "")
			_, slot, found := strings.Cut(strings.TrimSpace(string(n.Body())), "Parked at ")
			if !found {
				t.Fatalf("final NOTIFY %q", n.Body())
			}
			return inv, ok, slot
		}
	}
}

// TestParkAcrossNodes: a call parked on node A takes slot 701 on every node: the next call,
// parked on node B, gets 702. A phone of node B dials 701: node B sends the retrieval to node A,
// and the retriever talks to A's parked caller. The parked caller of B hangs up: 702 is free on
// every node.
func TestParkAcrossNodes(t *testing.T) {
	eachShared(t, func(t *testing.T, dsn string) {
		a, b := twoNodes(t, dsn, pbx.Config{})
		ctx := context.Background()
		parkerA, parkerB := newClient(t, a.addr), newClient(t, b.addr)
		bind(t, a, "101", parkerA)
		bind(t, b, "103", parkerB)
		callerA, callerB := newClient(t, a.addr), newClient(t, b.addr)
		invA, okA, slot := parkOn(t, a, callerA, parkerA, "101")
		if slot != "701" {
			t.Fatalf("parked on node A at %q, want 701", slot)
		}
		invB, okB, slot := parkOn(t, b, callerB, parkerB, "103")
		if slot != "702" {
			t.Fatalf("parked on node B at %q, want 702: 701 is node A's", slot)
		}

		r := newClient(t, b.addr)
		msg, rInv := r.Invite("102", "701", nil, pickSDP)
		r.Send(msg)
		re := callerA.WaitRequest(sip.INVITE) // node A re-INVITEs its parked caller
		if !strings.Contains(string(re.Body()), "m=audio 6000") {
			t.Fatalf("the parked caller is offered %q, not the retriever's session", re.Body())
		}
		callerA.Respond(re, 200, "OK", b2buatest.SDP)
		callerA.WaitRequest(sip.ACK)
		rOK := r.WaitResponse(200)
		if !strings.Contains(string(rOK.Body()), "m=audio 4000") {
			t.Fatalf("the retriever's answer %q is not the parked caller's session", rOK.Body())
		}
		r.Send(r.InDialog("ACK", rInv, rOK, 1))
		r.Send(r.InDialog("BYE", rInv, rOK, 2))
		r.WaitResponse(200)
		callerA.Respond(callerA.WaitRequest(sip.BYE), 200, "OK", "")
		waitIdle(t, a)
		cdr := lastCDR(t, a, invA.CallID().Value())
		if len(cdr.Segments) != 2 || cdr.Segments[0].EndReason != "parked" || cdr.Segments[1].Callee != "102" {
			t.Fatalf("node A's record of the parked call: %+v", cdr)
		}
		_ = okA // the parked caller's dialog with node A goes on: the retriever took the parker's side

		callerB.Send(callerB.InDialog("BYE", invB, okB, 2))
		callerB.WaitResponse(200)
		waitIdle(t, a)
		waitIdle(t, b)
		waitFor(t, "slots 701 and 702 free", func() bool {
			_, p1, err1 := a.store.ParkedAt(ctx, "701")
			_, p2, err2 := a.store.ParkedAt(ctx, "702")
			return err1 == nil && err2 == nil && !p1 && !p2
		})
		// Nothing is parked anywhere: 404, from either node.
		msg, rInv = r.Invite("102", "701", nil, pickSDP)
		r.Send(msg)
		r.AckFinal(rInv, r.WaitResponse(404))
		waitIdle(t, b)
		if err := a.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// ringOn has caller call number on a node, whose phone rings; it returns the caller's INVITE and
// the INVITE the phone got, once the ringing call is in the shared table.
func ringOn(t *testing.T, tp *testPBX, caller, phone *uaClient, number string) (*sip.Request, *sip.Request) {
	t.Helper()
	msg, inv := caller.Invite("100", number, nil)
	caller.Send(msg)
	bInv := phone.WaitRequest(sip.INVITE)
	phone.Respond(bInv, 180, "Ringing", "")
	caller.WaitResponse(180)
	waitFor(t, "the ringing call shared", func() bool {
		r, ok, err := tp.store.RingingAt(context.Background(), []string{number}, []string{"node-a", "node-b"})
		return err == nil && ok && r.CallID == inv.CallID().Value()
	})
	return inv, bInv
}

// pickUpFrom has picker (a phone of another node) dial code: the ringing phone gets CANCEL, the
// caller and the picker get 200 with each other's sessions; the picker hangs up. The ringing
// node's record names the picker as the callee.
func pickUpFrom(t *testing.T, owner, other *testPBX, caller, ringing, picker *uaClient, from, code string, inv, bInv *sip.Request) {
	t.Helper()
	msg, pInv := picker.Invite(from, code, nil, pickSDP)
	picker.Send(msg)
	ringing.AcceptCancel(bInv)
	ok := caller.WaitResponse(200)
	pOK := picker.WaitResponse(200)
	if !strings.Contains(string(ok.Body()), "m=audio 6000") || !strings.Contains(string(pOK.Body()), "m=audio 4000") {
		t.Fatalf("answers do not connect the two:\ncaller got %s\npicker got %s", ok.Body(), pOK.Body())
	}
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	picker.Send(picker.InDialog("ACK", pInv, pOK, 1))
	picker.Send(picker.InDialog("BYE", pInv, pOK, 2))
	picker.WaitResponse(200)
	caller.Respond(caller.WaitRequest(sip.BYE), 200, "OK", "")
	waitIdle(t, owner)
	waitIdle(t, other)
	if cdr := lastCDR(t, owner, inv.CallID().Value()); cdr.Callee != from {
		t.Fatalf("the ringing node's record: %+v", cdr)
	}
	waitFor(t, "the ringing call gone from the shared table", func() bool {
		_, ok, err := owner.store.RingingAt(context.Background(), []string{"101"}, []string{"node-a", "node-b"})
		return err == nil && !ok
	})
}

// TestPickupAcrossNodes: a call rings at 101, a phone of node A; 102, a phone of node B, picks it
// up with **101, then 103 (node B, in 101's pickup group) picks up the next with *8: node B sends
// each pickup to node A. Nothing ringing: 480.
func TestPickupAcrossNodes(t *testing.T) {
	eachShared(t, func(t *testing.T, dsn string) {
		a, b := twoNodes(t, dsn, pbx.Config{})
		ringing, caller := newClient(t, a.addr), newClient(t, a.addr)
		bind(t, a, "101", ringing)
		p102, p103 := newClient(t, b.addr), newClient(t, b.addr)
		bind(t, b, "102", p102)
		bind(t, b, "103", p103)
		for _, ext := range []string{"101", "103"} {
			if _, err := a.store.UpdateExtension(context.Background(), ext, storePatchGroup("sales")); err != nil {
				t.Fatal(err)
			}
		}
		inv, bInv := ringOn(t, a, caller, ringing, "101")
		pickUpFrom(t, a, b, caller, ringing, p102, "102", "**101", inv, bInv)
		inv, bInv = ringOn(t, a, caller, ringing, "101")
		pickUpFrom(t, a, b, caller, ringing, p103, "103", "*8", inv, bInv)

		msg, pInv := p102.Invite("102", "**101", nil, pickSDP)
		p102.Send(msg)
		p102.AckFinal(pInv, p102.WaitResponse(480))
		waitIdle(t, b)
		if err := a.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestNodeFeatureSigned: the nodes' feature header is taken without a password only when a node
// signed it for this node (with the shared key, within 30 s), once, or it comes from a trusted
// source. Unsigned, forged, signed for another number or node, old or replayed, it means nothing:
// the caller is challenged. Signed, the call is the feature's: nothing parked at 701 gets 404.
func TestNodeFeatureSigned(t *testing.T) {
	tp := startPBX(t, pbx.Config{NodeID: "node-a"})
	tp.addExt(t, "100", "pw100")
	c := newClient(t, tp.addr)
	good := pbx.SignFeature(tp.PBX, "node-a", "unpark", "701")
	_, params, _ := strings.Cut(good, ";")
	sig := strings.Split(good, "sig=")[1]
	for _, c2 := range []struct {
		name, value string
		status      int
	}{
		{"unsigned", "unpark 701", 407},
		{"forged", strings.Replace(good, sig, "AAAA"+sig[4:], 1), 407},
		{"other number", "unpark 702;" + params, 407},
		{"other node", pbx.SignFeature(tp.PBX, "node-b", "unpark", "701"), 407},
		{"old", "unpark 701;t=1000000000;" + strings.SplitN(params, ";", 2)[1], 407},
		{"signed", good, 404},
		{"replayed", good, 407},
		{"signed again", pbx.SignFeature(tp.PBX, "node-a", "unpark", "701"), 404},
	} {
		msg, inv := c.Invite("100", "555", []string{"X-Pbxkit-Feature: " + c2.value}, pickSDP)
		c.Send(msg)
		res := c.Recv(5 * time.Second)
		for res != nil && res.StatusCode < 200 {
			res = c.Recv(5 * time.Second)
		}
		if res == nil || res.StatusCode != c2.status {
			t.Fatalf("%s: %v, want %d", c2.name, res, c2.status)
		}
		c.AckFinal(inv, res)
	}
	waitIdle(t, tp)
}

// TestNodeDropsStaleClaims: a node starting drops the claims a crashed run of the same id left
// (here a park slot), and each heartbeat drops a slot claim its park lot does not hold (a release
// that failed).
func TestNodeDropsStaleClaims(t *testing.T) {
	eachShared(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if ok, err := s.ClaimSlot(ctx, "node-a", "705", "call-of-the-crashed-run", time.Hour); err != nil || !ok {
			t.Fatalf("claim: %v %v", ok, err)
		}
		a := startNode(t, dsn, pbx.Config{NodeID: "node-a", HeartbeatInterval: 100 * time.Millisecond})
		if _, held, err := a.store.ParkedAt(ctx, "705"); err != nil || held {
			t.Fatalf("slot 705 after the start: held %v, %v", held, err)
		}
		if ok, err := s.ClaimSlot(ctx, "node-a", "706", "call-whose-release-failed", time.Hour); err != nil || !ok {
			t.Fatalf("claim: %v %v", ok, err)
		}
		waitFor(t, "slot 706 dropped by a heartbeat", func() bool {
			_, held, err := a.store.ParkedAt(ctx, "706")
			return err == nil && !held
		})
	})
}
