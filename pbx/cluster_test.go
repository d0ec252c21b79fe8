package pbx_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/internal/testenv"
	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// eachShared runs f over a database that several PBXs share: a SQLite file and Postgres.
func eachShared(t *testing.T, f func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) { f(t, testenv.SQLiteDSN(t)) })
	t.Run("postgres", func(t *testing.T) { f(t, testenv.PostgresDSN(t)) })
}

// startNode is startPBXOn that waits until the PBX runs (its goroutines started, its node row
// written), so that the next PBX's goroutine baseline holds this one's.
func startNode(t *testing.T, dsn string, cfg pbx.Config) *testPBX {
	t.Helper()
	tp := startPBXOn(t, dsn, cfg)
	waitFor(t, "the PBX running", func() bool { return strings.Contains(tp.logs.String(), "pbx listening") })
	return tp
}

// twoNodes starts nodes A and B on dsn with cfg (trusting 127.0.0.0/8 and beating every 100 ms
// unless cfg says otherwise), and waits until A has read B's row (the nodes know each other).
func twoNodes(t *testing.T, dsn string, cfg pbx.Config) (a, b *testPBX) {
	t.Helper()
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 100 * time.Millisecond
	}
	if cfg.Trusted == nil {
		cfg.Trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	}
	cfg.NodeID = "node-a"
	a = startNode(t, dsn, cfg)
	cfg.NodeID = "node-b"
	b = startNode(t, dsn, cfg)
	ctx := context.Background()
	waitFor(t, "node A reading node B's row", func() bool {
		ns, err := a.Nodes(ctx)
		return err == nil && len(ns) == 2 && ns[0].LastSeen.After(ns[1].StartedAt.Add(2*cfg.HeartbeatInterval))
	})
	return a, b
}

// salesNodes is twoNodes running the call-centre dialplan with queue sales, whose one agent, 201,
// is registered through node A.
func salesNodes(t *testing.T, dsn string) (a, b *testPBX, agent *uaClient) {
	t.Helper()
	script := filepath.Join(t.TempDir(), "dialplan.lua")
	if err := os.WriteFile(script, []byte(callCentreScript), 0o644); err != nil {
		t.Fatal(err)
	}
	a, b = twoNodes(t, dsn, pbx.Config{DialplanScript: script, HeartbeatInterval: 200 * time.Millisecond})
	agent = newClient(t, a.addr)
	bind(t, a, "201", agent)
	q := store.Queue{Name: "sales", Strategy: store.StrategyRingAll, Members: []store.QueueMember{{Extension: "201"}}}
	if err := a.store.CreateQueue(context.Background(), &q); err != nil {
		t.Fatal(err)
	}
	return a, b, agent
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNodesHeartbeat: two PBXs on one database each announce themselves in the nodes table (id,
// SIP address, version) and name their id in pbxkit_node_info; one that shuts down removes its
// row.
func TestNodesHeartbeat(t *testing.T) {
	eachShared(t, func(t *testing.T, dsn string) {
		a := startNode(t, dsn, pbx.Config{NodeID: "node-a", Version: "v9", NodeHTTP: "127.0.0.1:8081", HeartbeatInterval: 100 * time.Millisecond})
		b := startNode(t, dsn, pbx.Config{NodeID: "node-b", HeartbeatInterval: 100 * time.Millisecond})
		ctx := context.Background()
		nodes, err := a.Nodes(ctx)
		if err != nil || len(nodes) != 2 {
			t.Fatalf("nodes: %+v, %v", nodes, err)
		}
		if n := nodes[0]; n.ID != "node-a" || n.SIPAddr != a.addr.String() || n.Version != "v9" || n.HTTPAddr != "127.0.0.1:8081" {
			t.Errorf("node a: %+v, want SIP %s", n, a.addr)
		}
		if n := nodes[1]; n.ID != "node-b" || n.SIPAddr != b.addr.String() {
			t.Errorf("node b: %+v, want SIP %s", n, b.addr)
		}
		// The heartbeat goes on: last_seen moves.
		first := nodes[1].LastSeen
		waitFor(t, "a second heartbeat of b", func() bool {
			ns, err := a.Nodes(ctx)
			return err == nil && len(ns) == 2 && ns[1].LastSeen.After(first) && pbx.NodeLive(ns[1], 100*time.Millisecond, time.Now())
		})
		rec := httptest.NewRecorder()
		promhttp.HandlerFor(b.Metrics(), promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if !strings.Contains(rec.Body.String(), `pbxkit_node_info{node="node-b",version=""} 1`) {
			t.Errorf("no node info in b's metrics:\n%s", grep(rec.Body.String(), "pbxkit_node"))
		}
		if err := b.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		nodes, err = a.Nodes(ctx)
		if err != nil || len(nodes) != 1 || nodes[0].ID != "node-a" {
			t.Fatalf("nodes after b stopped: %+v, %v", nodes, err)
		}
	})
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestNonceAcrossNodes: a REGISTER challenged by node A and answered to node B is accepted: the
// nonce key is in the shared database.
func TestNonceAcrossNodes(t *testing.T) {
	eachShared(t, func(t *testing.T, dsn string) {
		a := startNode(t, dsn, pbx.Config{NodeID: "node-a"})
		b := startNode(t, dsn, pbx.Config{NodeID: "node-b"})
		a.addExt(t, "301", "pw301")
		toA, toB := newClient(t, a.addr), newClient(t, b.addr)
		r := registerSpec("301", "across", 1, "Contact: <sip:301@10.0.0.31>")
		chal := toA.Do(toA.Build(r))
		if chal.StatusCode != 401 {
			t.Fatalf("first REGISTER: %d", chal.StatusCode)
		}
		r.CSeq = 2
		r.Headers = append(r.Headers, authorize(t, chal, r, "301", "pw301", "MD5"))
		if res := toB.Do(toB.Build(r)); res.StatusCode != 200 {
			t.Fatalf("answer to node B: %d %s", res.StatusCode, header(res, "WWW-Authenticate"))
		}
	})
}

// TestBanAcrossNodes: a source banned by node A for failed authentications is refused by node B
// too. Once the ban is lifted (officepbx ban rm), both nodes take the source again: node A, which
// made the ban, as well as node B.
func TestBanAcrossNodes(t *testing.T) {
	eachShared(t, func(t *testing.T, dsn string) {
		cfg := pbx.Config{AuthFailLimit: 2, HeartbeatInterval: 100 * time.Millisecond}
		cfg.NodeID = "node-a"
		a := startNode(t, dsn, cfg)
		cfg.NodeID = "node-b"
		b := startNode(t, dsn, cfg)
		a.addExt(t, "302", "pw302")
		toA, toB := newClient(t, a.addr), newClient(t, b.addr)
		for i := range 2 {
			res := register(t, toA, registerSpec("302", "guess", 1+2*i, "Contact: <sip:302@10.0.0.32>"), "302", "wrong", "MD5")
			if res.StatusCode != 401 {
				t.Fatalf("guess %d: %d", i, res.StatusCode)
			}
		}
		if res := toA.Do(toA.Build(registerSpec("302", "guess", 9, "Contact: <sip:302@10.0.0.32>"))); res.StatusCode != 403 {
			t.Fatalf("node A after the ban: %d", res.StatusCode)
		}
		cseq := 1
		waitFor(t, "node B refusing the banned source", func() bool {
			cseq++
			res := toB.Do(toB.Build(registerSpec("302", "after-ban", cseq, "Contact: <sip:302@10.0.0.32>")))
			return res.StatusCode == 403
		})
		if err := a.store.LiftBan(context.Background(), "127.0.0.1"); err != nil {
			t.Fatal(err)
		}
		for name, c := range map[string]*uaClient{"node A": toA, "node B": toB} {
			waitFor(t, name+" taking the source again", func() bool {
				cseq++
				res := c.Do(c.Build(registerSpec("302", "lifted", cseq, "Contact: <sip:302@10.0.0.32>")))
				return res.StatusCode == 401
			})
		}
	})
}

// TestProxyClientBanned: behind a proxy (Config.Proxies) a phone that guesses passwords gets
// itself banned, named by the Via the proxy added below its own, and not the proxy: another
// phone behind the same proxy still registers, and a ban of the proxy's address is not needed.
func TestProxyClientBanned(t *testing.T) {
	tp := startPBX(t, pbx.Config{AuthFailLimit: 2, Proxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	tp.addExt(t, "303", "pw303")
	proxy := newClient(t, tp.addr) // relays for two phones, as Kamailio would
	cseq := 0
	spec := func(client string) reqSpec {
		cseq += 2
		branch := fmt.Sprintf("z9hG4bK-px%d", rand.Int64())
		return registerSpec("303", "px-"+client, cseq,
			"Via: SIP/2.0/UDP "+proxy.Addr()+";branch="+branch,
			fmt.Sprintf("Via: SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bK-ph%d;rport=5060;received=%s", rand.Int64(), client),
			"Contact: <sip:303@"+client+":5060>")
	}
	// register with a new top Via branch for the answer to the challenge (the proxy's
	// transaction is new too).
	register := func(client, password string) *sip.Response {
		r := spec(client)
		chal := proxy.Do(proxy.Build(r))
		if chal.StatusCode != 401 {
			return chal
		}
		answer := spec(client)
		answer.CSeq = r.CSeq + 1
		answer.Headers = append(answer.Headers, authorize(t, chal, answer, "303", password, "MD5"))
		return proxy.Do(proxy.Build(answer))
	}
	for range 2 {
		if res := register("192.0.2.5", "guess"); res.StatusCode != 401 {
			t.Fatalf("guess: %d", res.StatusCode)
		}
	}
	if res := proxy.Do(proxy.Build(spec("192.0.2.5"))); res.StatusCode != 403 {
		t.Fatalf("the guessing phone after its ban: %d", res.StatusCode)
	}
	if res := register("192.0.2.6", "pw303"); res.StatusCode != 200 {
		t.Fatalf("another phone behind the proxy: %d", res.StatusCode)
	}
	if !strings.Contains(tp.logs.String(), `msg="sip source banned" component=auth src_ip=192.0.2.5 `) {
		t.Errorf("ban not logged for the phone:\n%s", grep(tp.logs.String(), "banned"))
	}
}

// TestQueueAgentAcrossNodes: two nodes serve queue sales, whose one agent is registered once.
// While node A rings the agent, and while the agent talks to A's caller, node B does not ring it
// for its own caller; once that call ends, B does.
func TestQueueAgentAcrossNodes(t *testing.T) {
	eachShared(t, func(t *testing.T, dsn string) {
		a, b, agent := salesNodes(t, dsn)
		callerA, callerB := newClient(t, a.addr), newClient(t, b.addr)
		msg, invA := callerA.Invite("100", "sales", nil)
		callerA.Send(msg)
		ringA := agent.WaitRequest(sip.INVITE)
		agent.Respond(ringA, 180, "Ringing", "")
		msg, invB := callerB.Invite("101", "sales", nil)
		callerB.Send(msg)
		callerB.WaitResponse(182) // queued on node B, which tries the agent every second
		quiet(t, agent, 2500*time.Millisecond)

		agent.Respond(ringA, 200, "OK", b2buatest.CalleeSDP)
		okA := callerA.WaitResponse(200)
		callerA.Send(callerA.InDialog("ACK", invA, okA, 1))
		agent.WaitRequest(sip.ACK)
		quiet(t, agent, 2500*time.Millisecond) // talking: still not rung by node B

		callerA.Send(callerA.InDialog("BYE", invA, okA, 2))
		agent.Respond(agent.WaitRequest(sip.BYE), 200, "OK", "")
		callerA.WaitResponse(200)
		ringB := agent.WaitRequest(sip.INVITE) // the agent is free: node B's caller gets it
		agent.Redirect(b.addr)                 // and answers node B from now on
		agent.Respond(ringB, 200, "OK", b2buatest.CalleeSDP)
		okB := callerB.WaitResponse(200)
		callerB.Send(callerB.InDialog("ACK", invB, okB, 1))
		agent.WaitRequest(sip.ACK)
		callerB.Send(callerB.InDialog("BYE", invB, okB, 2))
		agent.Respond(agent.WaitRequest(sip.BYE), 200, "OK", "")
		callerB.WaitResponse(200)
		// A stops first: B's goroutine check, which comes first, must not see A's.
		if err := a.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestQueueOrderAcrossNodes: callers queued through two nodes wait in one line, and the queue's
// figures count them both. With the agent busy, a caller queued on node B and then one on node A
// hear positions 1 and 2; when the agent
// is free, node B's caller (first in line) gets it, not node A's, which then moves up.
func TestQueueOrderAcrossNodes(t *testing.T) {
	eachShared(t, func(t *testing.T, dsn string) {
		a, b, agent := salesNodes(t, dsn)
		// The agent takes a call of node A and is busy.
		first := newClient(t, a.addr)
		msg, inv1 := first.Invite("100", "sales", nil)
		first.Send(msg)
		ring := agent.WaitRequest(sip.INVITE)
		agent.Respond(ring, 200, "OK", b2buatest.CalleeSDP)
		ok1 := first.WaitResponse(200)
		first.Send(first.InDialog("ACK", inv1, ok1, 1))
		agent.WaitRequest(sip.ACK)

		onB, onA := newClient(t, b.addr), newClient(t, a.addr)
		msg, invB := onB.Invite("101", "sales", nil)
		onB.Send(msg)
		waitPhrase(t, onB, invB, 182, "Queued (position 1)")
		msg, invA := onA.Invite("102", "sales", nil)
		onA.Send(msg)
		waitPhrase(t, onA, invA, 182, "Queued (position 2)")
		// The figures count both nodes' callers; this node's own, one.
		for _, n := range []*testPBX{a, b} {
			if all, own := n.Queues().StatsAcross(context.Background(), "sales"), n.Queues().Stats("sales"); all.Waiting != 2 ||
				own.Waiting != 1 || all.LongestWait+50*time.Millisecond < own.LongestWait {
				t.Errorf("waiting across the nodes %+v, on the node %+v; want 2 and 1", all, own)
			}
		}

		// The agent hangs up: node B's caller is first in line.
		first.Send(first.InDialog("BYE", inv1, ok1, 2))
		agent.Respond(agent.WaitRequest(sip.BYE), 200, "OK", "")
		first.WaitResponse(200)
		ring, from := agent.WaitRequestFrom(sip.INVITE)
		if from.String() != b.addr.String() {
			t.Fatalf("the free agent was rung by %s, want node B (%s), whose caller is first", from, b.addr)
		}
		agent.Redirect(b.addr)
		agent.Respond(ring, 200, "OK", b2buatest.CalleeSDP)
		okB := onB.WaitResponse(200)
		onB.Send(onB.InDialog("ACK", invB, okB, 1))
		agent.WaitRequest(sip.ACK)
		waitPhrase(t, onA, invA, 182, "Queued (position 1)")

		onA.Send(cancelOf(invA))
		res := onA.WaitResponse(487)
		onA.AckFinal(invA, res)
		onB.Send(onB.InDialog("BYE", invB, okB, 2))
		agent.Respond(agent.WaitRequest(sip.BYE), 200, "OK", "")
		onB.WaitResponse(200)
		if err := a.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestCallThroughRegisteringNode: a phone registered over TCP straight to node B (no balancer)
// is called by a caller of node A: A sends the call to B, which rings the phone over its
// connection. Node A could not open a connection to the phone itself.
func TestCallThroughRegisteringNode(t *testing.T) {
	eachShared(t, func(t *testing.T, dsn string) {
		a, b := twoNodes(t, dsn, pbx.Config{})
		b.addExt(t, "202", "pw202")
		ph := b2buatest.NewTCPPhone(t, b.addr.String())
		reg := registerSpec("202", "tcp-reg", 1, "Contact: <"+ph.Contact("202")+">")
		if res := ph.Do(ph.Build(reg)); res.StatusCode != 200 {
			t.Fatalf("REGISTER over TCP to node B: %d", res.StatusCode)
		}
		caller := newClient(t, a.addr)
		msg, inv := caller.Invite("100", "202", nil)
		caller.Send(msg)
		ring := ph.WaitRequest(sip.INVITE)
		if got := header(ring, "X-Pbxkit-Contact"); got != "" {
			t.Errorf("the phone saw the nodes' header: %q", got)
		}
		ph.Respond(ring, 200, "OK", b2buatest.CalleeSDP)
		ok := caller.WaitResponse(200)
		caller.Send(caller.InDialog("ACK", inv, ok, 1))
		ph.WaitRequest(sip.ACK)
		caller.Send(caller.InDialog("BYE", inv, ok, 2))
		ph.Respond(ph.WaitRequest(sip.BYE), 200, "OK", "")
		caller.WaitResponse(200)
		waitIdle(t, a)
		waitIdle(t, b)
		if err := a.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}
