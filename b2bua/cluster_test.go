package b2bua_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
)

// fakeCluster stands for the other nodes: the slots they hold, and a node (a phone here) that
// parks or rings the calls it is asked for.
type fakeCluster struct {
	mu       sync.Mutex
	taken    map[string]bool // slots another node holds
	claims   []string        // "slot call-id" claimed here, in order
	released []string        // "slot call-id" released, in order
	node     *b2buatest.Phone
	err      error         // returned by every question when set
	claiming chan struct{} // when set, ClaimSlot signals it and waits for gate
	gate     chan struct{}
}

func (f *fakeCluster) ClaimSlot(_ context.Context, slot, callID string) (bool, error) {
	if f.claiming != nil {
		f.claiming <- struct{}{}
		<-f.gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return false, f.err
	}
	if f.taken[slot] {
		return false, nil
	}
	f.claims = append(f.claims, slot+" "+callID)
	return true, nil
}

func (f *fakeCluster) ReleaseSlot(slot, callID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.released = append(f.released, slot+" "+callID)
}

func (f *fakeCluster) target(number, feature string) (b2bua.Target, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil || f.node == nil {
		return b2bua.Target{}, false, f.err
	}
	host, port, _ := net.SplitHostPort(f.node.Addr())
	pn, _ := strconv.Atoi(port)
	return b2bua.Target{URI: sip.Uri{Scheme: "sip", User: number, Host: host, Port: pn}, Dest: f.node.Addr(),
		Transport: "udp", Ext: number, Headers: []sip.Header{sip.NewHeader("X-Feature", feature)}}, true, nil
}

func (f *fakeCluster) ParkedElsewhere(_ context.Context, slot string) (b2bua.Target, bool, error) {
	return f.target(slot, "unpark "+slot)
}

func (f *fakeCluster) RingingElsewhere(_ context.Context, exts []string) (b2bua.Target, bool, error) {
	return f.target(exts[0], "pickup "+exts[0])
}

func (f *fakeCluster) setNode(p *b2buatest.Phone) *b2buatest.Phone {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.node = p
	return p
}

func (f *fakeCluster) log() (claims, released []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.claims...), append([]string(nil), f.released...)
}

// TestClusterParkSlotTakenElsewhere: slot 701 is held by another node, so the call is parked at
// 702, claimed for it; when the parked caller hangs up, the claim is released.
func TestClusterParkSlotTakenElsewhere(t *testing.T) {
	cl := &fakeCluster{taken: map[string]bool{"701": true}}
	cfg := parkConfig(time.Minute)
	cfg.Cluster = cl
	s := b2buatest.NewServer(t, cfg, parkRoute)
	caller, callee := s.Phone(t), s.Phone(t)
	s.Register("200", callee)
	inv, ok, frag := parkedCall(t, s, caller, callee)
	if !strings.Contains(frag, "Parked at 702") {
		t.Fatalf("final NOTIFY %q, want slot 702", frag)
	}
	id := inv.CallID().Value()
	if claims, _ := cl.log(); len(claims) != 1 || claims[0] != "702 "+id {
		t.Fatalf("claims %q", claims)
	}
	caller.Send(caller.InDialog("BYE", inv, ok, 2))
	caller.WaitResponse(200)
	s.WaitIdle()
	if _, released := cl.log(); len(released) != 1 || released[0] != "702 "+id {
		t.Fatalf("released %q", released)
	}
}

// TestClusterParkCallEndsWhileClaiming: the parked caller hangs up while the slot is being
// claimed on the other nodes: the call ends, and the slot it got is freed here and released
// there, not held by the ended call.
func TestClusterParkCallEndsWhileClaiming(t *testing.T) {
	cl := &fakeCluster{claiming: make(chan struct{}), gate: make(chan struct{})}
	cfg := parkConfig(time.Minute)
	cfg.Cluster = cl
	s := b2buatest.NewServer(t, cfg, parkRoute)
	caller, callee := s.Phone(t), s.Phone(t)
	s.Register("200", callee)
	inv, ok, bInv := answeredCall(t, s, caller, callee)
	callee.Send(refer(callee, bInv, 5, "<sip:700@pbx.test>"))
	callee.WaitResponse(202)
	<-cl.claiming
	caller.Send(caller.InDialog("BYE", inv, ok, 2))
	caller.WaitResponse(200)
	s.WaitEvent(inv.CallID().Value(), b2bua.CallEnded)
	close(cl.gate)
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		_, released := cl.log()
		if s.Engine.Parked("701") == "" && len(released) == 1 && released[0] == "701 "+inv.CallID().Value() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot 701 held by %q, released %q", s.Engine.Parked("701"), released)
		}
	}
	for {
		m := callee.RecvMsg(time.Second)
		if m == nil {
			break
		}
		if req, isReq := m.(*sip.Request); isReq {
			callee.Respond(req, 200, "OK", "") // NOTIFYs and the BYE of the ended call
		}
	}
	s.WaitIdle()
}

// TestClusterParkClaimFails: the other nodes cannot be asked: the call is parked at the first slot
// free here all the same.
func TestClusterParkClaimFails(t *testing.T) {
	cfg := parkConfig(time.Minute)
	cfg.Cluster = &fakeCluster{err: errors.New("database away")}
	s := b2buatest.NewServer(t, cfg, parkRoute)
	caller, callee := s.Phone(t), s.Phone(t)
	s.Register("200", callee)
	inv, ok, frag := parkedCall(t, s, caller, callee)
	if !strings.Contains(frag, "Parked at 701") {
		t.Fatalf("final NOTIFY %q, want slot 701", frag)
	}
	caller.Send(caller.InDialog("BYE", inv, ok, 2))
	caller.WaitResponse(200)
	s.WaitIdle()
}

// elsewhere has phone dial number, which the cluster's node holds: the node gets an INVITE
// for user with the feature header and the phone's session, answers, and the phone gets 200
// with the node's session; then the phone hangs up.
func elsewhere(t *testing.T, s *b2buatest.Server, cl *fakeCluster, phone *b2buatest.Phone, number, user, feature string) {
	t.Helper()
	msg, inv := phone.Invite("300", number, nil, pickerSDP)
	phone.Send(msg)
	cl.mu.Lock()
	node := cl.node
	cl.mu.Unlock()
	got := node.WaitRequest(sip.INVITE)
	if got.Recipient.User != user || header(got, "X-Feature") != feature || !strings.Contains(string(got.Body()), "m=audio") {
		t.Fatalf("the node got %s with X-Feature %q and %q", got.Recipient.String(), header(got, "X-Feature"), got.Body())
	}
	node.Respond(got, 200, "OK", b2buatest.CalleeSDP)
	node.WaitRequest(sip.ACK)
	ok := phone.WaitResponse(200)
	phone.Send(phone.InDialog("ACK", inv, ok, 1))
	phone.Send(phone.InDialog("BYE", inv, ok, 2))
	node.Respond(node.WaitRequest(sip.BYE), 200, "OK", "")
	phone.WaitResponse(200)
	s.WaitIdle()
	if rec := s.Record(inv.CallID().Value()); rec.Callee != user || rec.Status != 200 {
		t.Fatalf("record %+v", rec)
	}
}

// TestClusterUnparkElsewhere: nothing is parked at 703 here but another node parks a call there:
// the retrieval is sent to that node, and the retriever talks through it.
func TestClusterUnparkElsewhere(t *testing.T) {
	cfg := parkConfig(time.Minute)
	cl := &fakeCluster{}
	cfg.Cluster = cl
	s := b2buatest.NewServer(t, cfg, parkRoute)
	cl.setNode(s.Phone(t))
	elsewhere(t, s, cl, s.Phone(t), "703", "703", "unpark 703")
}

// TestClusterPickupElsewhere: nothing rings at 101 here but a call of another node does: the
// pickup is sent to that node.
func TestClusterPickupElsewhere(t *testing.T) {
	cl := &fakeCluster{}
	s := b2buatest.NewServer(t, b2bua.Config{Cluster: cl}, func(ctx context.Context, c *b2bua.Call) error {
		if c.Callee() == "**101" {
			_, err := c.Pickup(ctx, "101")
			return err
		}
		return b2buatest.DialCallee(ctx, c)
	})
	cl.setNode(s.Phone(t))
	elsewhere(t, s, cl, s.Phone(t), "**101", "101", "pickup 101")
}

// TestClusterNothingElsewhere: the cluster knows nothing, or cannot be asked: the retrieval gets
// 404 and the pickup 480, as on one node.
func TestClusterNothingElsewhere(t *testing.T) {
	for name, cl := range map[string]*fakeCluster{"none": {}, "error": {err: errors.New("database away")}} {
		t.Run(name, func(t *testing.T) {
			cfg := parkConfig(time.Minute)
			cfg.Cluster = cl
			s := b2buatest.NewServer(t, cfg, func(ctx context.Context, c *b2bua.Call) error {
				if c.Callee() == "**101" {
					_, err := c.Pickup(ctx, "101")
					return err
				}
				return parkRoute(ctx, c)
			})
			p := s.Phone(t)
			for number, status := range map[string]int{"702": 404, "**101": 480} {
				msg, inv := p.Invite("300", number, nil, pickerSDP)
				p.Send(msg)
				p.AckFinal(inv, p.WaitResponse(status))
			}
			s.WaitIdle()
		})
	}
}
