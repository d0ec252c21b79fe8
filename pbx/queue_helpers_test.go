package pbx_test

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// The call-centre tests: an office (trusted callers, a phone per agent) whose Lua dialplan puts
// calls to "sales" into the queue sales and answers "stats" with the queue's figures; every
// other number goes on to default routing (ring groups, the pause feature code).

const callCentreScript = `
function route(call)
  if call.to == "sales" then
    local r = call:queue("sales", {ring_timeout = 5})
    if not r.answered then call:reject(r.status) end
  elseif call.to == "stats" then
    local s = pbx.queue_stats("sales")
    call:reject(480, string.format("w=%d ans=%d ab=%d to=%d full=%d", s.waiting, s.answered, s.abandoned, s.timed_out, s.full))
  elseif call.to == "pause" then
    local ok = pbx.queue_pause("sales", call.from, true, "lunch")
    call:reject(ok and 603 or 404)
  elseif call.to == "hunt" then
    local r = call:connect({"103", "101"}, {strategy = "hunt", member_timeout = 1})
    if not r.answered then call:reject(r.status) end
  end
end`

// newCallCentre starts an office over dsn with agents (each with a phone) and queue q made of
// them, in the order given.
func newCallCentre(t *testing.T, dsn string, q store.Queue, agents ...string) *office {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dialplan.lua")
	if err := os.WriteFile(path, []byte(callCentreScript), 0o644); err != nil {
		t.Fatal(err)
	}
	o := newOffice(t, dsn, pbx.Config{DialplanScript: path}, agents)
	for i, a := range agents {
		q.Members = append(q.Members, store.QueueMember{Extension: a, Position: i})
	}
	if err := o.tp.store.CreateQueue(context.Background(), &q); err != nil {
		t.Fatal(err)
	}
	return o
}

// nextRing waits for an INVITE at any agent's phone and returns the agent and the INVITE.
func (o *office) nextRing(t *testing.T, within time.Duration) (string, *sip.Request) {
	t.Helper()
	exts := make([]string, 0, len(o.phones))
	for ext := range o.phones {
		exts = append(exts, ext)
	}
	sort.Strings(exts)
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		for _, ext := range exts {
			if req, ok := o.phones[ext].RecvMsg(5 * time.Millisecond).(*sip.Request); ok && req.Method == sip.INVITE {
				return ext, req
			}
		}
	}
	t.Fatalf("no agent rang within %v", within)
	return "", nil
}

// reasons returns the reason phrases of the responses with code.
func reasons(rs []*sip.Response, code int) []string {
	var out []string
	for _, r := range rs {
		if r.StatusCode == code {
			out = append(out, r.Reason)
		}
	}
	return out
}

// statsLine is the queue's figures as the script reports them (dialling "stats").
func (o *office) statsLine(t *testing.T) string {
	t.Helper()
	_, rs := dial(t, o.caller, "stats")
	return final(rs).Reason
}

// statsBecome polls the queue's figures until they read want (the queue counts an answered call
// when its connect returns, a moment after the caller has its 200), or 3 s pass; it returns the
// last figures read.
func (o *office) statsBecome(t *testing.T, want string) string {
	t.Helper()
	got := o.statsLine(t)
	for deadline := time.Now().Add(3 * time.Second); got != want && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		got = o.statsLine(t)
	}
	return got
}

// waitPhrase waits for a response to inv at c with code and phrase.
func waitPhrase(t *testing.T, c *uaClient, inv *sip.Request, code int, phrase string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var seen []string
	for time.Now().Before(deadline) {
		res, ok := c.RecvMsg(time.Until(deadline)).(*sip.Response)
		if !ok || res.CallID().Value() != inv.CallID().Value() {
			continue
		}
		if res.StatusCode == code && res.Reason == phrase {
			return
		}
		seen = append(seen, res.StartLine())
	}
	t.Fatalf("no %d %q (saw %s)", code, phrase, strings.Join(seen, "; "))
}
