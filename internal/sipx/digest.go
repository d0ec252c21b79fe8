package sipx

import (
	"errors"
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// Client-side digest authentication (RFC 3261 §22.2, §22.3; RFC 8760 for SHA-256): the PBX
// answering a provider's 401 or 407, for its trunks' INVITEs and REGISTERs.
//
// sipgo's Client.DoDigestAuth does the same with the same library, but takes only the first
// challenge header, rebuilds the Via (losing the PBX's branch prefix and rport) and sends the
// request itself. Authorize only adds the credentials, so the caller keeps building and sending
// its own requests.

// ErrNoChallenge is returned by Authorize when the response carries no challenge it can answer.
var ErrNoChallenge = errors.New("no digest challenge that can be answered")

// digestAlgorithms are the algorithms answered, as RFC 8760 §2 names them.
var digestAlgorithms = []string{"", "MD5", "SHA-256", "SHA-512-256"}

// Authorize adds the credentials for user and password that answer res (a 401 with
// WWW-Authenticate, or a 407 with Proxy-Authenticate) to req: Authorization or
// Proxy-Authorization, replacing any such header req had. Of several challenges it answers the
// topmost whose algorithm it supports (RFC 8760 §2.4). The digest-uri is req's Request-URI.
func Authorize(req *sip.Request, res *sip.Response, user, password string) error {
	chalName, credName := "WWW-Authenticate", "Authorization"
	if res.StatusCode == 407 {
		chalName, credName = "Proxy-Authenticate", "Proxy-Authorization"
	}
	chal, err := pickChallenge(res.GetHeaders(chalName))
	if err != nil {
		return err
	}
	cred, err := digest.Digest(chal, digest.Options{
		Method: string(req.Method), URI: req.Recipient.String(), Username: user, Password: password, Count: 1,
	})
	if err != nil {
		return fmt.Errorf("sipx: digest: %w", err)
	}
	req.RemoveHeader(credName)
	req.AppendHeader(sip.NewHeader(credName, cred.String()))
	return nil
}

// pickChallenge returns the topmost digest challenge with an algorithm and qop it can answer.
func pickChallenge(hs []sip.Header) (*digest.Challenge, error) {
	for _, h := range hs {
		chal, err := digest.ParseChallenge(h.Value())
		if err != nil {
			continue
		}
		chal.Algorithm = strings.ToUpper(chal.Algorithm)
		if !supported(chal.Algorithm) || !digest.CanDigest(chal) {
			continue
		}
		return chal, nil
	}
	return nil, ErrNoChallenge
}

func supported(alg string) bool {
	for _, a := range digestAlgorithms {
		if a == alg {
			return true
		}
	}
	return false
}
