package sipx

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

func hexHash(h func() hash.Hash, parts ...string) string {
	x := h()
	for i, p := range parts {
		if i > 0 {
			x.Write([]byte(":"))
		}
		x.Write([]byte(p))
	}
	return hex.EncodeToString(x.Sum(nil))
}

// TestAuthorize answers 401 and 407 challenges and checks the response against RFC 2617 §3.2.2
// computed by hand, for MD5 without qop and SHA-256 with qop=auth behind a challenge it cannot
// answer (RFC 8760 §2.4: the topmost supported one).
func TestAuthorize(t *testing.T) {
	for _, tc := range []struct {
		name       string
		code       int
		chals      []string
		credHeader string
		alg        func() hash.Hash
	}{
		{"401-md5", 401, []string{`Digest realm="prov", nonce="n1", algorithm=MD5`}, "Authorization", md5.New},
		{"407-sha256", 407, []string{`Digest realm="prov", nonce="n2", algorithm=AKAv1-MD5`,
			`Digest realm="prov", nonce="n2", algorithm=SHA-256, qop="auth"`, `Digest realm="prov", nonce="n2", algorithm=MD5`},
			"Proxy-Authorization", sha256.New},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "5551234", Host: "192.0.2.1", Port: 5080})
			res := sip.NewResponseFromRequest(req, tc.code, "", nil)
			name := "WWW-Authenticate"
			if tc.code == 407 {
				name = "Proxy-Authenticate"
			}
			for _, c := range tc.chals {
				res.AppendHeader(sip.NewHeader(name, c))
			}
			if err := Authorize(req, res, "acct", "pw"); err != nil {
				t.Fatal(err)
			}
			h := req.GetHeader(tc.credHeader)
			if h == nil {
				t.Fatalf("no %s in\n%s", tc.credHeader, req)
			}
			cred, err := digest.ParseCredentials(h.Value())
			if err != nil {
				t.Fatal(err)
			}
			if cred.URI != "sip:5551234@192.0.2.1:5080" || cred.Username != "acct" || cred.Realm != "prov" {
				t.Fatalf("credentials %+v", cred)
			}
			ha1 := hexHash(tc.alg, "acct", "prov", "pw")
			ha2 := hexHash(tc.alg, "INVITE", cred.URI)
			want := hexHash(tc.alg, ha1, cred.Nonce, ha2)
			if cred.QOP != "" {
				want = hexHash(tc.alg, ha1, cred.Nonce, fmt.Sprintf("%08x", cred.Nc), cred.Cnonce, cred.QOP, ha2)
			}
			if cred.Response != want {
				t.Fatalf("response %s, want %s (%s)", cred.Response, want, h.Value())
			}
		})
	}
}

func TestAuthorizeNoChallenge(t *testing.T) {
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: "192.0.2.1"})
	res := sip.NewResponseFromRequest(req, 401, "", nil)
	res.AppendHeader(sip.NewHeader("WWW-Authenticate", `Basic realm="x"`))
	if err := Authorize(req, res, "u", "p"); !errors.Is(err, ErrNoChallenge) {
		t.Fatalf("got %v, want ErrNoChallenge", err)
	}
}
