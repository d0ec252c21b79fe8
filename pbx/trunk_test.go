package pbx_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// registrar is a provider's registrar on 127.0.0.2 that answers each REGISTER with the next
// status of its script (the last one repeats) and hands the requests to the test.
type registrar struct {
	conn *net.UDPConn
	reqs chan *sip.Request
}

func newRegistrar(t *testing.T, codes ...int) *registrar {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Skipf("no 127.0.0.2 on this machine: %v", err)
	}
	r := &registrar{conn: conn, reqs: make(chan *sip.Request, 16)}
	done := make(chan struct{})
	t.Cleanup(func() { conn.Close(); <-done })
	go func() {
		defer close(done)
		r.serve(codes)
	}()
	return r
}

func (r *registrar) serve(codes []int) {
	buf := make([]byte, 65535)
	for i := 0; ; i++ {
		n, src, err := r.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		msg, err := sip.NewParser().ParseSIP(buf[:n])
		req, ok := msg.(*sip.Request)
		if err != nil || !ok {
			continue
		}
		code := codes[min(i, len(codes)-1)]
		res := sip.NewResponseFromRequest(req, code, "", nil)
		if code == 200 {
			res.AppendHeader(sip.NewHeader("Expires", "60"))
		}
		r.conn.WriteToUDP([]byte(res.String()), src)
		select {
		case r.reqs <- req:
		default:
		}
	}
}

func (r *registrar) next(t *testing.T, within time.Duration) (*sip.Request, time.Time) {
	t.Helper()
	select {
	case req := <-r.reqs:
		return req, time.Now()
	case <-time.After(within):
		t.Fatalf("no REGISTER within %v", within)
		return nil, time.Time{}
	}
}

// TestTrunkRegistrationBackoff: a provider that refuses the registration (403) is asked again
// after TrunkRetryMin, then after a doubled wait; the state says failed, with a log line. Once it
// accepts, the state is registered; Shutdown unregisters (Expires: 0) and leaves no goroutine
// (startPBX's leak check).
func TestTrunkRegistrationBackoff(t *testing.T) {
	reg := newRegistrar(t, 403, 403, 200)
	tp := startPBX(t, pbx.Config{TrunkRefresh: 50 * time.Millisecond, TrunkRetryMin: 200 * time.Millisecond,
		TrunkRetryMax: time.Second})
	err := tp.store.CreateTrunk(context.Background(), &store.Trunk{Name: "prov", Host: reg.conn.LocalAddr().String(),
		Username: "acct", Password: "pw", Register: true})
	if err != nil {
		t.Fatal(err)
	}
	first, t1 := reg.next(t, 2*time.Second)
	if first.From().Address.User != "acct" || first.GetHeader("Expires").Value() != "600" ||
		!strings.Contains(first.GetHeader("Contact").Value(), "sip:acct@127.0.0.1:") {
		t.Fatalf("REGISTER:\n%s", first)
	}
	_, t2 := reg.next(t, 2*time.Second)
	_, t3 := reg.next(t, 2*time.Second)
	if d := t2.Sub(t1); d < 90*time.Millisecond || d > 400*time.Millisecond {
		t.Errorf("first retry after %v, want 100-200ms", d)
	}
	if d := t3.Sub(t2); d < 190*time.Millisecond || d > 700*time.Millisecond {
		t.Errorf("second retry after %v, want 200-400ms", d)
	}
	deadline := time.Now().Add(2 * time.Second)
	for tp.TrunkStatus("prov").State != pbx.TrunkRegistered {
		if time.Now().After(deadline) {
			t.Fatalf("state %+v, want registered", tp.TrunkStatus("prov"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(tp.logs.String(), `msg="trunk registration failed" component=trunks trunk=prov error="403 Forbidden"`) {
		t.Fatalf("no failure logged:\n%s", tp.logs.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	un, _ := reg.next(t, time.Second)
	if un.GetHeader("Expires").Value() != "0" || un.CallID().Value() != first.CallID().Value() {
		t.Fatalf("unREGISTER:\n%s", un)
	}
	ts, err := tp.store.Trunks(context.Background())
	if err != nil || len(ts) != 1 || ts[0].RegState != pbx.TrunkStopped {
		t.Fatalf("stored trunks %+v, %v", ts, err)
	}
}

// addTrunk stores a trunk whose provider is the test phone prov, and waits until the PBX uses it.
func addTrunk(t *testing.T, tp *testPBX, prov *uaClient, tr store.Trunk) {
	t.Helper()
	tr.Host = prov.Addr()
	if err := tp.store.CreateTrunk(context.Background(), &tr); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for len(tp.Trunks()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("trunk not picked up")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLuaConnectThroughTrunk: call:connect(number, {trunk=...}) dials the number at the trunk's
// provider with its credentials (the 407 answered once, the provider's final answer passed to the
// script); an unknown trunk is a script error (500).
func TestLuaConnectThroughTrunk(t *testing.T) {
	tp, caller, _, _ := luaPBX(t, `
function route(call)
  if call.to == "nope" then return call:connect("555", {trunk = "missing"}) end
  local r = call:connect("99" .. call.to, {trunk = "prov", timeout = 5})
  if not r.answered then call:reject(r.status) end
end`, pbx.Config{TrunkRefresh: 50 * time.Millisecond}, 0)
	prov := newClient(t, tp.addr)
	addTrunk(t, tp, prov, store.Trunk{Name: "prov", Username: "acct", Password: "pw", CallerID: "4930999"})
	msg := caller.Build(reqSpec{Method: "INVITE", From: "100", To: "555", Headers: []string{
		"Contact: <sip:100@" + caller.Addr() + ">", "Content-Type: application/sdp"}, Body: sdpBody})
	caller.Send(msg)
	first := prov.WaitRequest(sip.INVITE)
	if first.Recipient.User != "99555" || first.From().Address.User != "4930999" {
		t.Fatalf("INVITE to the provider:\n%s", first)
	}
	prov.RespondWith(first, 407, "Proxy Authentication Required", "", `Proxy-Authenticate: Digest realm="p", nonce="x"`)
	prov.WaitRequest(sip.ACK)
	retry := prov.WaitRequest(sip.INVITE)
	if h := retry.GetHeader("Proxy-Authorization"); h == nil || !strings.Contains(h.Value(), `username="acct"`) {
		t.Fatalf("retry:\n%s", retry)
	}
	prov.Respond(retry, 486, "Busy Here", "")
	if res := caller.WaitResponse(486); res == nil {
		t.Fatal("no 486")
	}
	if res := final(second(dial(t, caller, "nope"))); res.StatusCode != 500 {
		t.Fatalf("unknown trunk: %d", res.StatusCode)
	}
}

// TestTrunkCallNotSentBackOut: default routing sends a number that is no extension out through
// the trunk, but never a call that came in from the trunk's own address (toll fraud): that one is
// refused 404 and the provider sees nothing.
func TestTrunkCallNotSentBackOut(t *testing.T) {
	tp, caller, _ := callPBX(t, pbx.Config{TrunkRefresh: 50 * time.Millisecond}, 0)
	prov := newClient(t, tp.addr) // on 127.0.0.1, like the caller: the caller is the trunk's address
	addTrunk(t, tp, prov, store.Trunk{Name: "prov", Prefix: "0"})
	if res := final(second(dial(t, caller, "0555"))); res.StatusCode != 404 {
		t.Fatalf("call from the trunk's address to 0555: %d, want 404", res.StatusCode)
	}
	if m := prov.RecvMsg(200 * time.Millisecond); m != nil {
		t.Fatalf("the provider got:\n%s", m)
	}
}

// TestTrunkRegisteredByOneNode: two nodes share a trunk that registers: one of them registers it
// (the provider sees one Contact), the other does not; when that node stops (unregistering), the
// other takes the registration over.
func TestTrunkRegisteredByOneNode(t *testing.T) {
	eachShared(t, func(t *testing.T, dsn string) {
		reg := newRegistrar(t, 200)
		a, b := twoNodes(t, dsn, pbx.Config{TrunkRefresh: 100 * time.Millisecond})
		err := a.store.CreateTrunk(context.Background(), &store.Trunk{Name: "prov", Host: reg.conn.LocalAddr().String(),
			Username: "acct", Password: "pw", Register: true})
		if err != nil {
			t.Fatal(err)
		}
		first, _ := reg.next(t, 3*time.Second)
		contact := first.GetHeader("Contact").Value()
		holder, other := a, b
		if strings.Contains(contact, ":"+strconv.Itoa(b.addr.Port)) {
			holder, other = b, a
		}
		if !strings.Contains(contact, ":"+strconv.Itoa(holder.addr.Port)) {
			t.Fatalf("REGISTER from neither node: %s", contact)
		}
		select {
		case again := <-reg.reqs:
			t.Fatalf("a second REGISTER while the first is good for a minute:\n%s", again)
		case <-time.After(time.Second):
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := holder.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if un, _ := reg.next(t, time.Second); un.GetHeader("Expires").Value() != "0" {
			t.Fatalf("the stopping node's unREGISTER:\n%s", un)
		}
		next, _ := reg.next(t, 3*time.Second)
		if c := next.GetHeader("Contact").Value(); !strings.Contains(c, ":"+strconv.Itoa(other.addr.Port)) ||
			next.GetHeader("Expires").Value() == "0" {
			t.Fatalf("the other node did not take the registration over: %s", next)
		}
		// Stopped here, not by the first node's clean-up: that one checks for goroutines left
		// against a baseline that did not have this node's new registration.
		if err := other.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	})
}
