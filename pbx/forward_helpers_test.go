package pbx_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/internal/testenv"
	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// The forwarding tests: a PBX whose callers are trusted, extensions with a phone each, and the
// settings officepbx ext set stores.

// eachStore runs f over an in-memory SQLite store and over Postgres (skipped without one).
func eachStore(t *testing.T, f func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) { f(t, "sqlite::memory:") })
	t.Run("postgres", func(t *testing.T) { f(t, testenv.PostgresDSN(t)) })
}

type office struct {
	tp     *testPBX
	caller *uaClient
	phones map[string]*uaClient // extension -> its registered phone
	host   string               // the PBX's host in the URIs of Diversion and History-Info
}

// newOffice starts a PBX over dsn with extensions registered at a phone each (registered) and
// extensions without a phone (unregistered).
func newOffice(t *testing.T, dsn string, cfg pbx.Config, registered []string, unregistered ...string) *office {
	t.Helper()
	cfg.Trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	tp := startPBXOn(t, dsn, cfg)
	o := &office{tp: tp, caller: newClient(t, tp.addr), phones: map[string]*uaClient{}, host: tp.addr.IP.String()}
	for _, n := range registered {
		o.phones[n] = newClient(t, tp.addr)
		bind(t, tp, n, o.phones[n])
	}
	for _, n := range unregistered {
		tp.addExt(t, n, "pw"+n)
	}
	return o
}

// set changes an extension as officepbx ext set does.
func (o *office) set(t *testing.T, number string, p store.ExtensionPatch) {
	t.Helper()
	if _, err := o.tp.store.UpdateExtension(context.Background(), number, p); err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

// call sends the caller's INVITE to number and returns it.
func (o *office) call(number string) *sip.Request {
	msg, inv := o.caller.Invite("100", number, nil)
	o.caller.Send(msg)
	return inv
}

// ring waits for the INVITE at number's phone.
func (o *office) ring(number string) *sip.Request { return o.phones[number].WaitRequest(sip.INVITE) }

// answer has the phone of number answer its INVITE bInv: the caller, which sent inv, gets the 200
// after the responses returned (181s among them), ACKs and hangs up.
func (o *office) answer(t *testing.T, number string, bInv, inv *sip.Request) []*sip.Response {
	t.Helper()
	p := o.phones[number]
	p.Respond(bInv, 200, "OK", calleeSDP)
	rs := awaitFinal(t, o.caller, inv, 5*time.Second)
	ok := final(rs)
	if ok.StatusCode != 200 {
		t.Fatalf("caller got %v, want a 200", codes(rs))
	}
	o.caller.Send(o.caller.InDialog("ACK", inv, ok, 1))
	p.WaitRequest(sip.ACK)
	hangUp(t, o.tp, o.caller, p, inv, ok, 2)
	return rs
}

// quiet checks that the phones of numbers got no INVITE (or no new one: rung at most once)
// other than the B-legs already seen.
func (o *office) quiet(t *testing.T, seen map[string]bool, numbers ...string) {
	t.Helper()
	time.Sleep(300 * time.Millisecond)
	for _, n := range numbers {
		for {
			m := o.phones[n].RecvMsg(10 * time.Millisecond)
			if m == nil {
				break
			}
			if req, ok := m.(*sip.Request); ok && req.Method == sip.INVITE && !seen[req.CallID().Value()] {
				t.Fatalf("%s was rung (again): %s", n, req.StartLine())
			}
		}
	}
}

// count returns how many responses with code rs holds.
func count(rs []*sip.Response, code int) int {
	n := 0
	for _, r := range rs {
		if r.StatusCode == code {
			n++
		}
	}
	return n
}
