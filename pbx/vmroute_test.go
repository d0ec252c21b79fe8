package pbx_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// stubMailboxes stands in for the voicemail application: it notes the mailbox each call was sent
// to and refuses the caller with 404 "Mailbox N", which the tests tell from any status routing
// itself answers.
type stubMailboxes struct {
	mu    sync.Mutex
	calls []string
}

func (s *stubMailboxes) Voicemail(_ context.Context, c *b2bua.Call, mailbox string) error {
	s.mu.Lock()
	s.calls = append(s.calls, mailbox)
	s.mu.Unlock()
	return c.Reject(404, "Mailbox "+mailbox)
}

func (s *stubMailboxes) taken() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

// vmOffice is newOffice with a voicemail application (nil: none).
func vmOffice(t *testing.T, dsn string, app b2bua.VoicemailApp, cfg pbx.Config, registered []string, unregistered ...string) *office {
	t.Helper()
	cfg.Trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	var opts []pbx.Option
	if app != nil {
		opts = append(opts, pbx.WithVoicemail(app))
	}
	tp := startPBXOn(t, dsn, cfg, opts...)
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

// TestDefaultRoutingToVoicemail: with its voicemail on, an extension's busy (486), declined
// (603), unanswered (ring timeout) and unregistered calls, and those refused for do not disturb,
// go to its mailbox (Call.Voicemail) instead of the failure status; a forward set for the case
// comes first; with voicemail off, or for other failures, the status stands.
func TestDefaultRoutingToVoicemail(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		app := &stubMailboxes{}
		o := vmOffice(t, dsn, app, pbx.Config{}, []string{"101", "103", "104", "105", "107"}, "102", "106", "108")
		on := ptr(true)
		for _, n := range []string{"101", "102", "103", "104", "107", "108"} {
			o.set(t, n, store.ExtensionPatch{Voicemail: on})
		}
		o.set(t, "103", store.ExtensionPatch{RingTimeout: ptr(1)})
		o.set(t, "104", store.ExtensionPatch{ForwardBusy: ptr("105")})
		o.set(t, "108", store.ExtensionPatch{DND: on})

		want := func(number string, code int, reason string, phone func()) {
			t.Helper()
			inv := o.call(number)
			if phone != nil {
				phone()
			}
			rs := awaitFinal(t, o.caller, inv, 10*time.Second)
			if f := final(rs); f.StatusCode != code || f.Reason != reason {
				t.Fatalf("call to %s: %d %s, want %d %s", number, f.StatusCode, f.Reason, code, reason)
			}
		}
		busy := func(n string, code int, reason string) func() {
			return func() { o.phones[n].Respond(o.ring(n), code, reason, "") }
		}
		want("101", 404, "Mailbox 101", busy("101", 486, "Busy Here"))
		want("101", 404, "Mailbox 101", busy("101", 603, "Decline"))
		want("102", 404, "Mailbox 102", nil) // not registered
		want("103", 404, "Mailbox 103", func() {
			b := o.ring("103")
			o.phones["103"].Respond(b, 180, "Ringing", "")
			o.phones["103"].AcceptCancel(b) // the ring timeout
		})
		want("108", 404, "Mailbox 108", nil) // do not disturb
		// A forward for the case comes first: 104 busy rings 105, whose decline stands (its
		// voicemail is off).
		want("104", 603, "Decline", func() {
			o.phones["104"].Respond(o.ring("104"), 486, "Busy Here", "")
			o.phones["105"].Respond(o.ring("105"), 603, "Decline", "")
		})
		want("106", 480, "Temporarily Unavailable", nil) // voicemail off
		// A failure that is neither busy nor no answer stands.
		want("107", 500, "Server Internal Error", busy("107", 500, "Server Internal Error"))
		got := app.taken()
		if len(got) != 5 || got[0] != "101" || got[1] != "101" || got[2] != "102" || got[3] != "103" || got[4] != "108" {
			t.Fatalf("mailboxes reached %v, want [101 101 102 103 108]", got)
		}
	})
}

// TestVoicemailWithoutApplication: without a voicemail application, a call to an unregistered
// extension with voicemail on gets 480 as before, and call:voicemail reports status 480.
func TestVoicemailWithoutApplication(t *testing.T) {
	o := vmOffice(t, "sqlite::memory:", nil, pbx.Config{}, nil, "102")
	o.set(t, "102", store.ExtensionPatch{Voicemail: ptr(true)})
	inv := o.call("102")
	if f := final(awaitFinal(t, o.caller, inv, 10*time.Second)); f.StatusCode != 480 {
		t.Fatalf("call to 102: %d %s, want 480", f.StatusCode, f.Reason)
	}
}

// TestLuaVoicemail: call:voicemail(ext) in a Lua dialplan runs the voicemail application, and
// pbx.extension shows the mailbox switch.
func TestLuaVoicemail(t *testing.T) {
	script := filepath.Join(t.TempDir(), "vm.lua")
	os.WriteFile(script, []byte(`
function route(call)
  local ext = pbx.extension(call.to)
  if ext and ext.voicemail then
    local r = call:voicemail(call.to)
    if not r.answered then return call:reject(r.status, r.reason) end
    return
  end
  return call:reject(480, "No Mailbox")
end
`), 0o600)
	app := &stubMailboxes{}
	o := vmOffice(t, "sqlite::memory:", app, pbx.Config{DialplanScript: script}, nil, "201", "202")
	o.set(t, "201", store.ExtensionPatch{Voicemail: ptr(true)})
	for _, c := range []struct {
		number string
		code   int
		reason string
	}{{"201", 404, "Mailbox 201"}, {"202", 480, "No Mailbox"}} {
		inv := o.call(c.number)
		if f := final(awaitFinal(t, o.caller, inv, 10*time.Second)); f.StatusCode != c.code || f.Reason != c.reason {
			t.Fatalf("call to %s: %d %s, want %d %s", c.number, f.StatusCode, f.Reason, c.code, c.reason)
		}
	}
	if got := app.taken(); len(got) != 1 || got[0] != "201" {
		t.Fatalf("mailboxes reached %v", got)
	}
}
