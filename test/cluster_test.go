package test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/internal/testenv"
	"github.com/pbxkit/pbxkit/store"
)

// TestClusterBehindKamailio runs two officepbx nodes on one Postgres schema behind Kamailio's
// dispatcher (bench/kamailio/dispatcher.cfg):
//   - phones register through the balancer and land on both nodes; officepbx nodes lists both;
//   - a phone on node A calls a phone registered through node B: the call connects, with RTP both
//     ways through node A's relay;
//   - queue sales, with an agent on each node and a caller queued on each: each agent is rung once
//     at a time, the second caller gets the agent the first did not take;
//   - a call of node A ringing a phone is picked up (**EXT) by a phone on node B, with audio;
//   - do not disturb set with the CLI applies to node B's next call;
//   - node A is killed (SIGKILL): node B keeps registering and calling, A's phones re-register
//     through the balancer onto B and call from there, and officepbx nodes shows A stale.
func TestClusterBehindKamailio(t *testing.T) {
	testenv.Kamailio(t) // skip (or fail under CI) before starting anything
	dsn := testenv.PostgresDSN(t)
	ctx := context.Background()
	cli(t, "migrate", "--db", dsn)
	var exts []string
	for i := 201; i <= 208; i++ {
		ext := fmt.Sprint(i)
		exts = append(exts, ext)
		cli(t, "ext", "add", ext, "--password", "pw"+ext, "--domain", "pbx.test", "--db", dsn)
	}
	script := filepath.Join(t.TempDir(), "dialplan.lua")
	writeScript(t, script, `function route(call)
  if call.to == "sales" then
    local r = call:queue("sales", {ring_timeout = 10})
    if not r.answered then call:reject(r.status) end
  end
end`)
	relays := map[string]int{} // node -> first port of its relay range
	node := func(id string) *server {
		lo := freePortRange(t, 100)
		relays[id] = lo
		return startServer(t, "--db", dsn, "--domain", "pbx.test", "--node-id", id, "--proxies", "127.0.0.1",
			"--heartbeat", "500ms", "--rtp-ip", "127.0.0.1", "--rtp-ports", fmt.Sprintf("%d-%d", lo, lo+99), "--dialplan", script)
	}
	a, b := node("node-a"), node("node-b")
	k := startKamailio(t, a.addr, b.addr)
	waitBalancer(t, k)
	s, err := store.Open(ctx, dsn, store.WithoutMigrate(), store.WithCacheTTL(0))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	out := cli(t, "nodes", "--db", dsn, "--heartbeat", "500ms")
	for id, srv := range map[string]*server{"node-a": a, "node-b": b} {
		if !regexp.MustCompile(`(?m)^` + id + `\s+live\s+` + regexp.QuoteMeta(srv.addr) + `\s`).MatchString(out) {
			t.Fatalf("officepbx nodes does not list %s live at %s:\n%s", id, srv.addr, out)
		}
	}

	// Every phone registers through the balancer and lands on the node its From URI hashes to.
	on := map[string][]*clusterPhone{}
	for _, ext := range exts {
		p := newClusterPhone(t, k, ext)
		if code := p.register(); code != 200 {
			t.Fatalf("%s registering through the balancer: %d", ext, code)
		}
		n := nodeOf(t, s, ext)
		on[n] = append(on[n], p)
	}
	if len(on["node-a"]) < 2 || len(on["node-b"]) < 2 {
		t.Fatalf("phones per node: a %d, b %d; want at least 2 on each", len(on["node-a"]), len(on["node-b"]))
	}
	onA, onB := on["node-a"], on["node-b"]
	relayOf := func(port int) string {
		for id, lo := range relays {
			if port >= lo && port < lo+100 {
				return id
			}
		}
		return "?"
	}

	// A phone on A calls a phone on B: node A takes the call and reaches the callee through the
	// balancer, which holds the callee's registration path.
	if n := relayOf(talk(t, onA[0], onB[0])); n != "node-a" {
		t.Errorf("call from a phone on node A relayed by %s", n)
	}
	// And back: node B takes it (its cache now holds the callee's extension).
	if n := relayOf(talk(t, onB[0], onA[0])); n != "node-b" {
		t.Errorf("call from a phone on node B relayed by %s", n)
	}

	// A queue whose agents are on both nodes, a caller queued on each node: no agent is rung by
	// both nodes at once.
	cli(t, "queue", "add", "sales", "--member", onA[0].ext+","+onB[0].ext, "--db", dsn)
	queueAcross(t, onA[1], onB[1], onA[0], onB[0])

	// A call of node A rings a phone; a phone of node B picks it up (**EXT): node B asks node A,
	// and the two talk through both relays.
	if pc, pp := pickupAcross(t, s, onA[1], onA[0], onB[1]); relayOf(pc) != "node-a" || relayOf(pp) != "node-b" {
		t.Errorf("picked-up call relayed by %s (caller) and %s (picker); want node-a and node-b", relayOf(pc), relayOf(pp))
	}

	// Do not disturb, set with the CLI (another process), applies to node B's next call.
	cli(t, "ext", "set", onA[0].ext, "--dnd", "on", "--db", dsn)
	start := time.Now()
	for {
		code := dialStatus(t, onB[0], onA[0].ext)
		if code == 486 {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("node B still routes to an extension in do not disturb: %d", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("do not disturb applied on node B %v after the CLI set it", time.Since(start).Round(time.Millisecond))
	cli(t, "ext", "set", onA[0].ext, "--dnd", "off", "--db", dsn)

	// Node A dies.
	a.cmd.Process.Kill()
	<-a.done
	if strings.Contains(a.logs(), "DATA RACE") {
		t.Errorf("race detected in node A:\n%s", a.logs())
	}
	if code := onB[1].register(); code != 200 {
		t.Fatalf("a phone of node B re-registering after A died: %d", code)
	}
	for _, p := range onA {
		if code := p.register(); code != 200 {
			t.Fatalf("%s (was on node A) re-registering: %d", p.ext, code)
		}
		if n := nodeOf(t, s, p.ext); n != "node-b" {
			t.Fatalf("%s re-registered onto %q, want node-b", p.ext, n)
		}
	}
	if n := relayOf(talk(t, onA[1], onB[1])); n != "node-b" {
		t.Errorf("call after node A died relayed by %s", n)
	}
	if n := relayOf(talk(t, onB[0], onA[0])); n != "node-b" {
		t.Errorf("call to a phone moved from A relayed by %s", n)
	}
	out = cli(t, "nodes", "--db", dsn, "--heartbeat", "500ms")
	if !regexp.MustCompile(`(?m)^node-a\s+stale\s`).MatchString(out) || !regexp.MustCompile(`(?m)^node-b\s+live\s`).MatchString(out) {
		t.Errorf("officepbx nodes after node A died:\n%s", out)
	}
}

// waitBalancer waits until an OPTIONS through Kamailio is answered 200 by a node.
func waitBalancer(t *testing.T, k *kamailio) {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 4096)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		msg := fmt.Sprintf("OPTIONS sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-w%d;rport\r\nMax-Forwards: 70\r\n"+
			"From: <sip:probe@pbx.test>;tag=w\r\nTo: <sip:pbx.test>\r\nCall-ID: wait-%d\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
			c.LocalAddr(), rand.Int64(), rand.Int64())
		c.WriteToUDP([]byte(msg), k.addr)
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if n, _, err := c.ReadFromUDP(buf); err == nil && strings.HasPrefix(string(buf[:n]), "SIP/2.0 200") {
			return
		}
	}
	t.Fatal("the balancer did not answer OPTIONS with a node's 200 within 20s")
}

// dial sends caller's INVITE to callee's extension through the balancer, answering the proxy
// challenge, and returns the INVITE that was answered (the second), ready to wait for answers.
func dial(t *testing.T, caller *clusterPhone, ext string) *sip.Request {
	t.Helper()
	uri := "sip:" + ext + "@pbx.test"
	callID := fmt.Sprintf("call-%d@test", rand.Int64())
	invite := func(cseq int, extra ...string) (string, *sip.Request) {
		msg := caller.Build(b2buatest.Request{Method: "INVITE", URI: uri, From: caller.ext, To: ext, CallID: callID, CSeq: cseq,
			Headers: append([]string{"Contact: <" + caller.Contact(caller.ext) + ">", "Content-Type: application/sdp"}, extra...),
			Body:    caller.sdp()})
		m, err := sip.ParseMessage([]byte(msg))
		if err != nil {
			t.Fatal(err)
		}
		return msg, m.(*sip.Request)
	}
	msg, req := invite(1)
	res := caller.Do(msg)
	if res.StatusCode != 407 {
		t.Fatalf("INVITE without credentials: %d, want 407", res.StatusCode)
	}
	caller.AckFinal(req, res)
	msg, req = invite(2, caller.answer(res, "INVITE", uri))
	caller.Send(msg)
	return req
}

// dialStatus calls ext and returns the final answer's status, which must be a refusal.
func dialStatus(t *testing.T, caller *clusterPhone, ext string) int {
	t.Helper()
	req := dial(t, caller, ext)
	deadline := time.Now().Add(b2buatest.Wait)
	for time.Now().Before(deadline) {
		res, ok := caller.RecvMsg(time.Until(deadline)).(*sip.Response)
		if !ok || res.StatusCode < 200 {
			continue
		}
		if res.StatusCode < 300 {
			t.Fatalf("call to %s answered; want a refusal", ext)
		}
		caller.AckFinal(req, res)
		return res.StatusCode
	}
	t.Fatalf("no final answer to the call to %s", ext)
	return 0
}

// talk has caller call callee through the balancer; the callee answers, RTP flows both ways
// through the relay, and the caller hangs up. It returns the relay port facing the caller.
func talk(t *testing.T, caller, callee *clusterPhone) int {
	t.Helper()
	req := dial(t, caller, callee.ext)
	bInv := callee.WaitRequest(sip.INVITE)
	callee.Respond(bInv, 180, "Ringing", "")
	callee.Respond(bInv, 200, "OK", callee.sdp())
	ok := caller.WaitResponse(200)
	caller.Send(caller.InDialogWith("ACK", req, ok, 2, routeSet(ok)))
	callee.WaitRequest(sip.ACK)
	pa, pb := sdpPort(t, ok.Body()), sdpPort(t, bInv.Body())
	callee.hears("to callee", func(seq uint16) {
		caller.sendRTP(pa, seq, "to callee")
		callee.sendRTP(pb, seq, "to caller")
	})
	caller.hears("to caller", func(seq uint16) { callee.sendRTP(pb, seq, "to caller") })
	caller.Send(caller.InDialogWith("BYE", req, ok, 3, routeSet(ok)))
	callee.Respond(callee.WaitRequest(sip.BYE), 200, "OK", "")
	caller.WaitResponse(200)
	return pa
}

// queueAcross queues callerA (on node A) and then callerB (on node B) in queue sales, whose
// agents are agentA and agentB (ringall): node A rings both agents; while they ring node B rings
// neither; agentB answers callerA, and node B then rings agentA, once, for callerB.
func queueAcross(t *testing.T, callerA, callerB, agentA, agentB *clusterPhone) {
	t.Helper()
	reqA := dial(t, callerA, "sales")
	ringA, ringB := agentA.WaitRequest(sip.INVITE), agentB.WaitRequest(sip.INVITE)
	agentA.Respond(ringA, 180, "Ringing", "")
	agentB.Respond(ringB, 180, "Ringing", "")
	reqB := dial(t, callerB, "sales")
	callerB.WaitResponse(182)
	for _, ag := range []*clusterPhone{agentA, agentB} { // node B tries every second
		for deadline := time.Now().Add(2500 * time.Millisecond); time.Now().Before(deadline); {
			if req, ok := ag.RecvMsg(time.Until(deadline)).(*sip.Request); ok && req.Method == sip.INVITE {
				t.Fatalf("agent %s rung twice at once:\n%s", ag.ext, req)
			}
		}
	}
	agentB.Respond(ringB, 200, "OK", agentB.sdp())
	okA := callerA.WaitResponse(200)
	callerA.Send(callerA.InDialogWith("ACK", reqA, okA, 2, routeSet(okA)))
	agentB.WaitRequest(sip.ACK)
	agentA.AcceptCancel(ringA)
	// agentA is free: node B's caller gets it.
	again := agentA.WaitRequest(sip.INVITE)
	if again.CallID().Value() == ringA.CallID().Value() {
		t.Fatal("agent A rung again for the call it was offered")
	}
	agentA.Respond(again, 200, "OK", agentA.sdp())
	okB := callerB.WaitResponse(200)
	callerB.Send(callerB.InDialogWith("ACK", reqB, okB, 2, routeSet(okB)))
	agentA.WaitRequest(sip.ACK)
	for _, c := range []struct {
		caller, agent *clusterPhone
		req           *sip.Request
		ok            *sip.Response
	}{{callerA, agentB, reqA, okA}, {callerB, agentA, reqB, okB}} {
		c.caller.Send(c.caller.InDialogWith("BYE", c.req, c.ok, 3, routeSet(c.ok)))
		c.agent.Respond(c.agent.WaitRequest(sip.BYE), 200, "OK", "")
		c.caller.WaitResponse(200)
	}
}

// pickupAcross has caller (on node A) call ringing, which rings; picker, on node B, dials
// **EXT: ringing gets CANCEL, caller and picker get 200 and hear each other, picker hangs up. It
// returns the relay ports facing the caller and the picker, for the test to name their nodes.
func pickupAcross(t *testing.T, s *store.Store, caller, ringing, picker *clusterPhone) (callerPort, pickerPort int) {
	t.Helper()
	req := dial(t, caller, ringing.ext)
	bInv := ringing.WaitRequest(sip.INVITE)
	ringing.Respond(bInv, 180, "Ringing", "")
	caller.WaitResponse(180)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		r, ok, err := s.RingingAt(context.Background(), []string{ringing.ext}, []string{"node-a", "node-b"})
		if err == nil && ok && r.NodeID == "node-a" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node A's ringing call not shared: %+v %v %v", r, ok, err)
		}
	}
	pReq := dial(t, picker, "**"+ringing.ext)
	ringing.AcceptCancel(bInv)
	ringing.WaitRequest(sip.ACK) // of the 487
	ok := caller.WaitResponse(200)
	pOK := picker.WaitResponse(200)
	caller.Send(caller.InDialogWith("ACK", req, ok, 2, routeSet(ok)))
	picker.Send(picker.InDialogWith("ACK", pReq, pOK, 2, routeSet(pOK)))
	pc, pp := sdpPort(t, ok.Body()), sdpPort(t, pOK.Body())
	picker.hears("to picker", func(seq uint16) {
		caller.sendRTP(pc, seq, "to picker")
		picker.sendRTP(pp, seq, "to caller")
	})
	caller.hears("to caller", func(seq uint16) { picker.sendRTP(pp, seq, "to caller") })
	picker.Send(picker.InDialogWith("BYE", pReq, pOK, 3, routeSet(pOK)))
	caller.Respond(caller.WaitRequest(sip.BYE), 200, "OK", "")
	picker.WaitResponse(200)
	return pc, pp
}
