package b2bua_test

import (
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
)

// trunkServer is a server whose extension 200 is a provider behind a phone: its target carries
// credentials, a caller ID and the provider's domain, as a trunk's does.
func trunkServer(t *testing.T) (*b2buatest.Server, *b2buatest.Phone, *b2buatest.Phone) {
	s := b2buatest.NewServer(t, b2bua.Config{}, nil)
	prov, caller := s.Phone(t), s.Phone(t)
	var uri sip.Uri
	if err := sip.ParseUri("sip:5551234@"+prov.Addr(), &uri); err != nil {
		t.Fatal(err)
	}
	s.RegisterTarget(b2bua.Target{URI: uri, Dest: prov.Addr(), Transport: "udp", Ext: "200",
		Auth: &b2bua.Credentials{Username: "acct", Password: "pw"}, FromUser: "4930999", Domain: "prov.test"})
	return s, caller, prov
}

const proxyChallenge = `Proxy-Authenticate: Digest realm="prov.test", nonce="n-1", algorithm=MD5, qop="auth"`

// TestTrunkLegAnswersChallenge: a provider's 407 is answered with Proxy-Authorization in a new
// INVITE (same Call-ID and From tag, next CSeq, new branch); the caller never sees the challenge,
// the call is answered, and the BYE that ends it follows the retry's CSeq.
func TestTrunkLegAnswersChallenge(t *testing.T) {
	s, caller, prov := trunkServer(t)
	msg, inv := invite(caller)
	caller.Send(msg)
	first := prov.WaitRequest(sip.INVITE)
	if u := first.From().Address; u.User != "4930999" || u.Host != "prov.test" || first.To().Address.User != "5551234" {
		t.Fatalf("From %s To %s: want the trunk's caller ID at the provider's domain", first.From().Value(), first.To().Value())
	}
	prov.RespondWith(first, 407, "Proxy Authentication Required", "", proxyChallenge)
	prov.WaitRequest(sip.ACK)
	second := prov.WaitRequest(sip.INVITE)
	checkRetry(t, first, second)
	prov.Respond(second, 180, "Ringing", "")
	caller.WaitResponse(180)
	prov.Respond(second, 200, "OK", b2buatest.CalleeSDP)
	ok := caller.WaitResponse(200)
	prov.WaitRequest(sip.ACK)
	caller.Send(caller.InDialog("ACK", inv, ok, 1))
	caller.Send(caller.InDialog("BYE", inv, ok, 2))
	caller.WaitResponse(200)
	bye := prov.WaitRequest(sip.BYE)
	if bye.CSeq().SeqNo != 3 {
		t.Fatalf("BYE CSeq %d, want 3 (after the INVITEs' 1 and 2)", bye.CSeq().SeqNo)
	}
	prov.Respond(bye, 200, "OK", "")
	s.WaitIdle()
	if rec := s.Record(inv.CallID().Value()); rec.Disposition() != "answered" {
		t.Fatalf("record %+v", rec)
	}
}

// checkRetry checks the authenticated INVITE against the first one and its digest against the
// password.
func checkRetry(t *testing.T, first, second *sip.Request) {
	t.Helper()
	fromTag1, _ := first.From().Params.Get("tag")
	fromTag2, _ := second.From().Params.Get("tag")
	b1, _ := first.Via().Params.Get("branch")
	b2, _ := second.Via().Params.Get("branch")
	if second.CallID().Value() != first.CallID().Value() || fromTag1 != fromTag2 || second.CSeq().SeqNo != 2 || b1 == b2 {
		t.Fatalf("retry: Call-ID %s/%s, From tag %s/%s, CSeq %d, branch %s/%s", first.CallID().Value(),
			second.CallID().Value(), fromTag1, fromTag2, second.CSeq().SeqNo, b1, b2)
	}
	h := second.GetHeader("Proxy-Authorization")
	if h == nil {
		t.Fatalf("no Proxy-Authorization in\n%s", second)
	}
	cred, err := digest.ParseCredentials(h.Value())
	if err != nil {
		t.Fatal(err)
	}
	want, err := digest.Digest(&digest.Challenge{Realm: "prov.test", Nonce: "n-1", Algorithm: "MD5", QOP: []string{"auth"}},
		digest.Options{Method: "INVITE", URI: cred.URI, Username: "acct", Password: "pw", Cnonce: cred.Cnonce, Count: cred.Nc})
	if err != nil {
		t.Fatal(err)
	}
	if cred.Response != want.Response || cred.Username != "acct" || !strings.HasPrefix(cred.URI, "sip:5551234@") {
		t.Fatalf("credentials %s: response should be %s", h.Value(), want.Response)
	}
}

// TestTrunkLegWrongCredentials: a second challenge is not answered again; the caller gets 403.
func TestTrunkLegWrongCredentials(t *testing.T) {
	s, caller, prov := trunkServer(t)
	msg, inv := invite(caller)
	caller.Send(msg)
	first := prov.WaitRequest(sip.INVITE)
	prov.RespondWith(first, 407, "Proxy Authentication Required", "", proxyChallenge)
	prov.WaitRequest(sip.ACK)
	second := prov.WaitRequest(sip.INVITE)
	prov.RespondWith(second, 407, "Proxy Authentication Required", "", proxyChallenge)
	prov.WaitRequest(sip.ACK)
	caller.WaitResponse(403)
	if m, _, _ := prov.RecvRaw(300 * time.Millisecond); m != nil {
		if r, ok := m.(*sip.Request); ok && r.Method == sip.INVITE {
			t.Fatalf("a third INVITE:\n%s", r)
		}
	}
	s.WaitIdle()
	if rec := s.Record(inv.CallID().Value()); rec.Status != 403 {
		t.Fatalf("record %+v", rec)
	}
}
