package pbx_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/internal/testenv"
	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// registerSpec is a REGISTER for ext from the client, with Contact lines and an optional Expires.
func registerSpec(ext, callID string, cseq int, extra ...string) reqSpec {
	return reqSpec{Method: "REGISTER", URI: "sip:pbx.test", From: ext, To: ext, CallID: callID, CSeq: cseq, Headers: extra}
}

// register runs the challenge-response exchange and returns the final answer.
func register(t testing.TB, c *uaClient, r reqSpec, user, password, alg string) *sip.Response {
	t.Helper()
	res := c.Do(c.Build(r))
	if res.StatusCode != 401 {
		return res
	}
	r.CSeq++
	r.Headers = append(append([]string{}, r.Headers...), authorize(t, res, r, user, password, alg))
	return c.Do(c.Build(r))
}

func contactExpiries(res *sip.Response) map[string]int {
	out := map[string]int{}
	re := regexp.MustCompile(`<([^>]+)>;expires=(\d+)`)
	for _, h := range res.GetHeaders("Contact") {
		m := re.FindStringSubmatch(h.String())
		if m == nil {
			m = re.FindStringSubmatch("<" + h.Value())
		}
		if m != nil {
			var n int
			fmt.Sscan(m[2], &n)
			out[m[1]] = n
		}
	}
	return out
}

func TestRegisterDigestMD5AndSHA256(t *testing.T) {
	tp := startPBX(t, pbx.Config{DigestAlgorithms: []string{"SHA-256", "MD5"}})
	tp.addExt(t, "100", "secret100")
	c := newClient(t, tp.addr)
	for _, alg := range []string{"MD5", "SHA-256"} {
		t.Run(alg, func(t *testing.T) {
			r := registerSpec("100", "reg-"+alg, 1, "Contact: <sip:100@192.0.2.10:5062>", "Expires: 600")
			first := c.Do(c.Build(r))
			if first.StatusCode != 401 || first.Reason != "Unauthorized" {
				t.Fatalf("no challenge: %d %s", first.StatusCode, first.Reason)
			}
			if ch := header(first, "WWW-Authenticate"); !strings.Contains(ch, "algorithm="+alg) || !strings.Contains(ch, `qop="auth"`) {
				t.Fatalf("challenge %q", ch)
			}
			res := register(t, c, r, "100", "secret100", alg)
			if res.StatusCode != 200 {
				t.Fatalf("register with %s: %d %s\n%s", alg, res.StatusCode, res.Reason, res)
			}
			if got := contactExpiries(res); got["sip:100@192.0.2.10:5062"] < 599 || got["sip:100@192.0.2.10:5062"] > 600 {
				t.Fatalf("200 contacts %v", got)
			}
			if res.GetHeader("Date") == nil {
				t.Error("200 without Date")
			}
		})
	}
	bs, err := tp.store.Bindings(context.Background(), "100")
	if err != nil || len(bs) != 1 {
		t.Fatalf("bindings %v %+v", err, bs)
	}
	// RFC 3581: the address the REGISTER came from is kept to reach the phone, whatever the
	// Contact says.
	if bs[0].Source != c.Addr() || bs[0].Transport != "udp" || bs[0].CallID != "reg-SHA-256" {
		t.Fatalf("binding %+v, want source %s", bs[0], c.Addr())
	}
}

func TestRegisterExpiryRules(t *testing.T) {
	tp := startPBX(t, pbx.Config{MinExpires: 60 * time.Second, MaxExpires: 1800 * time.Second})
	tp.addExt(t, "101", "pw101")
	c := newClient(t, tp.addr)
	ok := func(r reqSpec) *sip.Response {
		t.Helper()
		res := register(t, c, r, "101", "pw101", "MD5")
		return res
	}
	res := ok(registerSpec("101", "e1", 1, "Contact: <sip:101@10.0.0.1>", "Expires: 30"))
	if res.StatusCode != 423 || res.Reason != "Interval Too Brief" || header(res, "Min-Expires") != "60" {
		t.Fatalf("too short: %d %s Min-Expires=%q", res.StatusCode, res.Reason, header(res, "Min-Expires"))
	}
	res = ok(registerSpec("101", "e2", 1, "Contact: <sip:101@10.0.0.1>;expires=99999"))
	if res.StatusCode != 200 || contactExpiries(res)["sip:101@10.0.0.1"] != 1800 {
		t.Fatalf("too long not clamped: %d %v", res.StatusCode, contactExpiries(res))
	}
	// The parameter wins over the header (RFC 3261 §10.3 step 6).
	res = ok(registerSpec("101", "e3", 1, "Contact: <sip:101@10.0.0.2>;expires=120", "Expires: 900"))
	if got := contactExpiries(res); res.StatusCode != 200 || got["sip:101@10.0.0.2"] != 120 || len(got) != 2 {
		t.Fatalf("param vs header: %d %v", res.StatusCode, got)
	}
	// A query (no Contact) lists the bindings.
	res = ok(registerSpec("101", "e4", 1))
	if got := contactExpiries(res); res.StatusCode != 200 || len(got) != 2 {
		t.Fatalf("query: %d %v", res.StatusCode, got)
	}
	// expires=0 removes one binding.
	res = ok(registerSpec("101", "e3", 5, "Contact: <sip:101@10.0.0.2>;expires=0"))
	if got := contactExpiries(res); res.StatusCode != 200 || len(got) != 1 {
		t.Fatalf("remove one: %d %v", res.StatusCode, got)
	}
	// "*" without Expires: 0 is malformed; with it, everything goes.
	res = ok(registerSpec("101", "e5", 1, "Contact: *"))
	if res.StatusCode != 400 {
		t.Fatalf("star without Expires 0: %d", res.StatusCode)
	}
	res = ok(registerSpec("101", "e5", 3, "Contact: *", "Expires: 0"))
	if res.StatusCode != 200 || len(res.GetHeaders("Contact")) != 0 {
		t.Fatalf("remove all: %d\n%s", res.StatusCode, res)
	}
	if bs, _ := tp.store.Bindings(context.Background(), "101"); len(bs) != 0 {
		t.Fatalf("bindings left after *: %+v", bs)
	}
	res = ok(registerSpec("101", "e6", 1, "Contact: <sip:101@10.0.0.3>", "Expires: soon"))
	if res.StatusCode != 400 {
		t.Fatalf("non-numeric Expires: %d", res.StatusCode)
	}
}

func TestRegisterCSeqOrderAndMaxContacts(t *testing.T) {
	tp := startPBX(t, pbx.Config{MaxContacts: 2, ContactsFull: pbx.ContactsRefuse})
	tp.addExt(t, "102", "pw102")
	c := newClient(t, tp.addr)
	res := register(t, c, registerSpec("102", "same-call", 10, "Contact: <sip:102@10.0.0.1>"), "102", "pw102", "MD5")
	if res.StatusCode != 200 {
		t.Fatalf("register: %d", res.StatusCode)
	}
	// Same Call-ID, lower CSeq: out of order (RFC 3261 §10.3 step 7).
	res = register(t, c, registerSpec("102", "same-call", 3, "Contact: <sip:102@10.0.0.1>"), "102", "pw102", "MD5")
	if res.StatusCode != 400 || !strings.Contains(header(res, "Warning"), "out of order") {
		t.Fatalf("out-of-order CSeq: %d %s", res.StatusCode, header(res, "Warning"))
	}
	res = register(t, c, registerSpec("102", "other-call", 1, "Contact: <sip:102@10.0.0.2>"), "102", "pw102", "MD5")
	if res.StatusCode != 200 || len(contactExpiries(res)) != 2 {
		t.Fatalf("second contact: %d", res.StatusCode)
	}
	res = register(t, c, registerSpec("102", "third-call", 1, "Contact: <sip:102@10.0.0.3>"), "102", "pw102", "MD5")
	if res.StatusCode != 403 || !strings.Contains(header(res, "Warning"), "at most 2 contacts") {
		t.Fatalf("third contact over the limit: %d %s", res.StatusCode, header(res, "Warning"))
	}
	// Refreshing an existing contact is not a new one.
	res = register(t, c, registerSpec("102", "other-call", 5, "Contact: <sip:102@10.0.0.2>"), "102", "pw102", "MD5")
	if res.StatusCode != 200 {
		t.Fatalf("refresh at the limit: %d", res.StatusCode)
	}
}

// TestRegisterReplacesOldestContact: by default a REGISTER past MaxContacts replaces the least
// recently refreshed other contact (a phone whose NAT mapping changed registers anew while its
// old contact lingers); more new contacts in one REGISTER than the limit are still refused.
func TestRegisterReplacesOldestContact(t *testing.T) {
	tp := startPBX(t, pbx.Config{MaxContacts: 2})
	tp.addExt(t, "106", "pw106")
	c := newClient(t, tp.addr)
	reg := func(callID string, cseq int, contacts ...string) *sip.Response {
		var hs []string
		for _, ct := range contacts {
			hs = append(hs, "Contact: <"+ct+">")
		}
		return register(t, c, registerSpec("106", callID, cseq, hs...), "106", "pw106", "MD5")
	}
	for i, ct := range []string{"sip:106@10.0.0.1", "sip:106@10.0.0.2"} {
		if res := reg(fmt.Sprint("call-", i), 1, ct); res.StatusCode != 200 {
			t.Fatalf("contact %s: %d", ct, res.StatusCode)
		}
	}
	if res := reg("call-0", 5, "sip:106@10.0.0.1"); res.StatusCode != 200 { // .1 refreshed: .2 is now the oldest
		t.Fatalf("refresh: %d", res.StatusCode)
	}
	res := reg("call-3", 1, "sip:106@10.0.0.3")
	if res.StatusCode != 200 {
		t.Fatalf("a third contact at the limit: %d %s", res.StatusCode, header(res, "Warning"))
	}
	got := header(res, "Contact")
	if strings.Contains(got, "10.0.0.2") || !strings.Contains(got, "10.0.0.1") || !strings.Contains(got, "10.0.0.3") {
		t.Fatalf("contacts after the replacement: %s", got)
	}
	bs, err := tp.store.Bindings(context.Background(), "106")
	if err != nil || len(bs) != 2 {
		t.Fatalf("bindings %+v %v", bs, err)
	}
	if !strings.Contains(tp.logs.String(), "registration replaced: contact limit") {
		t.Fatal("the replacement was not logged")
	}
	if res := reg("call-4", 1, "sip:106@10.0.0.4", "sip:106@10.0.0.5", "sip:106@10.0.0.6"); res.StatusCode != 403 {
		t.Fatalf("three new contacts at once with a limit of 2: %d", res.StatusCode)
	}
}

func TestRegisterOtherExtensionForbidden(t *testing.T) {
	tp := startPBX(t, pbx.Config{})
	tp.addExt(t, "103", "pw103")
	tp.addExt(t, "104", "pw104")
	c := newClient(t, tp.addr)
	r := registerSpec("104", "steal", 1, "Contact: <sip:evil@10.6.6.6>")
	first := c.Do(c.Build(r))
	r.CSeq++
	r.Headers = append(r.Headers, authorize(t, first, r, "103", "pw103", "MD5"))
	if res := c.Do(c.Build(r)); res.StatusCode != 403 {
		t.Fatalf("103 registering 104: %d", res.StatusCode)
	}
}

func TestStaleNonceAndReplay(t *testing.T) {
	clk := testenv.NewClock(time.Now())
	tp := startPBX(t, pbx.Config{NonceTTL: time.Minute, DigestAlgorithms: []string{"SHA-256"}}, pbx.WithClock(clk.Now))
	tp.addExt(t, "105", "pw105")
	c := newClient(t, tp.addr)
	r := registerSpec("105", "stale", 1, "Contact: <sip:105@10.0.0.5>")
	chal := c.Do(c.Build(r))
	r.CSeq = 2
	authLine := authorize(t, chal, r, "105", "pw105", "SHA-256")
	clk.Add(2 * time.Minute)
	r.Headers = append(r.Headers, authLine)
	res := c.Do(c.Build(r))
	if res.StatusCode != 401 || !strings.Contains(header(res, "WWW-Authenticate"), "stale=true") {
		t.Fatalf("old nonce, right password: %d %q", res.StatusCode, header(res, "WWW-Authenticate"))
	}
	// Fresh nonce: accepted once; the same credentials (same nc) again are a replay.
	r.Headers = r.Headers[:1]
	r.CSeq = 3
	authLine = authorize(t, res, r, "105", "pw105", "SHA-256")
	r.Headers = append(r.Headers, authLine)
	if res := c.Do(c.Build(r)); res.StatusCode != 200 {
		t.Fatalf("fresh nonce: %d", res.StatusCode)
	}
	r.CSeq = 4
	if res := c.Do(c.Build(r)); res.StatusCode != 401 || strings.Contains(header(res, "WWW-Authenticate"), "stale=true") {
		t.Fatalf("replayed nonce count: %d %q", res.StatusCode, header(res, "WWW-Authenticate"))
	}
	if !strings.Contains(tp.logs.String(), "nonce count replayed") {
		t.Error("replay not logged")
	}
}

// TestNoUserEnumeration: an unknown user and a wrong password get the same answer, byte for byte
// once nonces and tags are masked.
func TestNoUserEnumeration(t *testing.T) {
	tp := startPBX(t, pbx.Config{})
	tp.addExt(t, "106", "pw106")
	c := newClient(t, tp.addr)
	mask := regexp.MustCompile(`nonce="[^"]*"|tag=[0-9a-zA-Z-]+|Call-ID: \S+|branch=[^;\s]+`)
	answer := func(user, password string) string {
		r := registerSpec(user, "enum", 1, "Contact: <sip:x@10.0.0.9>")
		r.CallID = "enum-call"
		r.Branch = "z9hG4bK-enum1-" + user + password
		chal := c.Do(c.Build(r))
		r.CSeq = 2
		r.Branch = "z9hG4bK-enum2-" + user + password
		r.Headers = append(r.Headers, authorize(t, chal, r, user, password, "MD5"))
		res, raw := c.DoRaw(c.Build(r))
		if res.StatusCode != 401 {
			t.Fatalf("%s/%s: %d", user, password, res.StatusCode)
		}
		out := mask.ReplaceAllString(string(raw), "X")
		// The To header names the user the request named; that is the caller's own input.
		return strings.ReplaceAll(out, "sip:"+user+"@", "sip:USER@")
	}
	wrongPassword := answer("106", "guess")
	unknownUser := answer("999", "guess")
	if wrongPassword != unknownUser {
		t.Fatalf("answers differ:\nwrong password:\n%s\nunknown user:\n%s", wrongPassword, unknownUser)
	}
	disabled := func() string {
		off := false
		if _, err := tp.store.UpdateExtension(context.Background(), "106", store.ExtensionPatch{Enabled: &off}); err != nil {
			t.Fatal(err)
		}
		return answer("106", "pw106")
	}()
	if disabled != wrongPassword {
		t.Fatalf("disabled extension answers differently:\n%s", disabled)
	}
}

func TestBanAfterFailures(t *testing.T) {
	clk := testenv.NewClock(time.Now())
	tp := startPBX(t, pbx.Config{AuthFailLimit: 3, AuthBanTime: time.Minute}, pbx.WithClock(clk.Now))
	tp.addExt(t, "107", "pw107")
	c := newClient(t, tp.addr)
	for i := range 3 {
		res := register(t, c, registerSpec("107", fmt.Sprintf("ban%d", i), 1, "Contact: <sip:107@10.0.0.7>"), "107", "wrong", "MD5")
		if res.StatusCode != 401 {
			t.Fatalf("failure %d: %d", i, res.StatusCode)
		}
	}
	// Banned: even the right password is refused, without a challenge.
	res := c.Do(c.Build(reqSpec{Method: "REGISTER", URI: "sip:pbx.test", From: "107", To: "107", Headers: []string{"Contact: <sip:107@10.0.0.7>"}}))
	if res.StatusCode != 403 {
		t.Fatalf("banned source: %d", res.StatusCode)
	}
	inv := c.Do(c.Build(reqSpec{Method: "INVITE", From: "107", To: "200", Headers: []string{"Content-Type: application/sdp"}, Body: sdpBody}))
	if inv.StatusCode != 403 {
		t.Fatalf("banned source INVITE: %d", inv.StatusCode)
	}
	logs := tp.logs.String()
	if n := strings.Count(logs, `msg="sip auth failed" component=auth src_ip=127.0.0.1`); n != 3 {
		t.Errorf("%d 'sip auth failed' lines with the source IP, want one per failure (3):\n%s", n, logs)
	}
	if !strings.Contains(logs, `msg="sip source banned" component=auth src_ip=127.0.0.1`) {
		t.Error("ban not logged")
	}
	clk.Add(2 * time.Minute)
	if res := register(t, c, registerSpec("107", "after", 1, "Contact: <sip:107@10.0.0.7>"), "107", "pw107", "MD5"); res.StatusCode != 200 {
		t.Fatalf("after the ban: %d", res.StatusCode)
	}
}

func TestAuthenticatedInvitePassesAuth(t *testing.T) {
	tp := startPBX(t, pbx.Config{DigestAlgorithms: []string{"SHA-256", "MD5"}})
	tp.addExt(t, "108", "pw108")
	c := newClient(t, tp.addr)
	r := reqSpec{Method: "INVITE", From: "108", To: "200", Headers: []string{"Content-Type: application/sdp"}, Body: sdpBody}
	chal := c.Do(c.Build(r))
	if chal.StatusCode != 407 {
		t.Fatalf("challenge: %d", chal.StatusCode)
	}
	r.CSeq = 2
	r.Headers = append(r.Headers, authorize(t, chal, r, "108", "pw108", "SHA-256"))
	res := c.Do(c.Build(r))
	if res.StatusCode == 407 || res.StatusCode == 403 {
		t.Fatalf("valid Proxy-Authorization refused: %d", res.StatusCode)
	}
}

// TestNonceFromBeforeRestart: credentials computed on a nonce this PBX did not issue (another node,
// or before a restart) are answered stale=true when the password is right, and do not count
// towards a ban; with a wrong password they do.
func TestNonceFromBeforeRestart(t *testing.T) {
	old := startPBX(t, pbx.Config{})
	tp := startPBX(t, pbx.Config{AuthFailLimit: 2})
	old.addExt(t, "109", "pw109")
	tp.addExt(t, "109", "pw109")
	oldClient := newClient(t, old.addr)
	r := registerSpec("109", "restart", 1, "Contact: <sip:109@10.0.0.9>")
	chal := oldClient.Do(oldClient.Build(r))
	c := newClient(t, tp.addr)
	for i := range 3 { // more than AuthFailLimit: none of them may count
		r.CSeq = 2 + i
		r.Headers = []string{"Contact: <sip:109@10.0.0.9>", authorize(t, chal, r, "109", "pw109", "MD5")}
		res := c.Do(c.Build(r))
		if res.StatusCode != 401 || !strings.Contains(header(res, "WWW-Authenticate"), "stale=true") {
			t.Fatalf("foreign nonce, right password: %d %q", res.StatusCode, header(res, "WWW-Authenticate"))
		}
	}
	if res := register(t, c, registerSpec("109", "restart2", 1, "Contact: <sip:109@10.0.0.9>"), "109", "pw109", "MD5"); res.StatusCode != 200 {
		t.Fatalf("source was banned for stale nonces: %d", res.StatusCode)
	}
	r.CSeq = 10
	r.Headers = []string{"Contact: <sip:109@10.0.0.9>", authorize(t, chal, r, "109", "guess", "MD5")}
	if res := c.Do(c.Build(r)); res.StatusCode != 401 || strings.Contains(header(res, "WWW-Authenticate"), "stale=true") {
		t.Fatalf("foreign nonce, wrong password: %d %q", res.StatusCode, header(res, "WWW-Authenticate"))
	}
	if !strings.Contains(tp.logs.String(), `msg="sip auth failed" component=auth src_ip=127.0.0.1 user=109`) {
		t.Fatal("wrong password on a foreign nonce not counted")
	}
}

// TestPurgeLoop: expired registrations are deleted from the database by the PBX's own loop.
func TestPurgeLoop(t *testing.T) {
	tp := startPBX(t, pbx.Config{PurgeInterval: 50 * time.Millisecond})
	tp.addExt(t, "110", "pw110")
	ctx := context.Background()
	err := tp.store.PutBinding(ctx, store.Binding{Extension: "110", Contact: "sip:110@10.0.0.10", ExpiresAt: time.Now().Add(100 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		all, err := tp.store.LiveBindings(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// LiveBindings hides expired rows; PurgeExpired finding nothing left proves the loop ran.
		if len(all) == 0 && strings.Contains(tp.logs.String(), "expired registrations purged") {
			if n, _ := tp.store.PurgeExpired(ctx); n != 0 {
				t.Fatalf("%d expired rows left after the loop's purge", n)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("expired binding not purged within 10s:\n%s", tp.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
