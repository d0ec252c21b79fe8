package pbx

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A node asks another for a feature (clustercalls.go) with a signed header, so that the nodes
// need not trust each other's addresses: behind the balancer they authenticate phones, and a
// node's address may be shared with the balancer's. The signature is an HMAC of the node asked,
// the feature, its number, a time stamp and a random nonce, with the shared key of the time
// stamp's generation (the nonce keys, noncekeys.go: every node reads them from the database), in
// a domain of its own so that it can never be taken for a digest nonce. The node asked takes a
// signature once (it remembers the nonces it took), within featureSigWindow of its time stamp.
//
//	X-Pbxkit-Feature: unpark 701;t=1796040000;n=<nonce>;sig=<base64url HMAC-SHA256>
//
// A node that signs while the database cannot give it the key signs with a key of its own, which
// the others do not accept: the caller then gets 403, as for any call the PBX cannot authorize.

// featureSigWindow is how far a signed feature's time stamp may be from now.
const featureSigWindow = 30 * time.Second

// featureSigDomain starts every signed text: a signature of something else never matches.
const featureSigDomain = "pbxkit node feature\x00"

// nodeFeature is a feature request as the header carries it.
type nodeFeature struct {
	feature, number string
	ts, nonce, sig  string
}

// signFeature is the header value asking node for feature on number, signed now.
func (p *PBX) signFeature(node, feature, number string) string {
	at := time.Unix(p.now().Unix(), 0)
	key, _ := p.auth.keys.key(at, at)
	var nonce [12]byte
	_, _ = rand.Read(nonce[:])
	f := nodeFeature{feature: feature, number: number, ts: strconv.FormatInt(at.Unix(), 10),
		nonce: base64.RawURLEncoding.EncodeToString(nonce[:])}
	return feature + " " + number + ";t=" + f.ts + ";n=" + f.nonce + ";sig=" + f.mac(key, node)
}

// mac signs f for node with key.
func (f nodeFeature) mac(key []byte, node string) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(featureSigDomain + node + "\x00" + f.feature + " " + f.number + "\x00" + f.ts + "\x00" + f.nonce))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// parseFeature reads a header value.
func parseFeature(v string) nodeFeature {
	head, params, _ := strings.Cut(v, ";")
	var f nodeFeature
	f.feature, f.number, _ = strings.Cut(strings.TrimSpace(head), " ")
	f.number = strings.TrimSpace(f.number)
	for _, kv := range strings.Split(params, ";") {
		k, val, _ := strings.Cut(strings.TrimSpace(kv), "=")
		switch k {
		case "t":
			f.ts = val
		case "n":
			f.nonce = val
		case "sig":
			f.sig = val
		}
	}
	return f
}

// featureSigned reports whether f is signed for this node, within featureSigWindow of now, with
// the key of its time stamp's generation, and was not taken before.
func (p *PBX) featureSigned(f nodeFeature) bool {
	sec, err := strconv.ParseInt(f.ts, 10, 64)
	if err != nil || f.sig == "" || f.nonce == "" {
		return false
	}
	at, now := time.Unix(sec, 0), p.now()
	if d := now.Sub(at); d > featureSigWindow || d < -featureSigWindow {
		return false
	}
	key, ok := p.auth.keys.key(at, now)
	if !ok || !hmac.Equal([]byte(f.sig), []byte(f.mac(key, p.cfg.NodeID))) {
		return false
	}
	return p.featureNonces.take(f.nonce, now)
}

// usedNonces remembers the nonces of the signed features taken within twice featureSigWindow,
// so that a signature is taken once. Only correctly signed nonces get here.
type usedNonces struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

// take reports whether nonce is new, and remembers it.
func (u *usedNonces) take(nonce string, now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.seen == nil {
		u.seen = map[string]time.Time{}
	}
	if _, dup := u.seen[nonce]; dup {
		return false
	}
	for n, at := range u.seen {
		if now.Sub(at) > 2*featureSigWindow {
			delete(u.seen, n)
		}
	}
	u.seen[nonce] = now
	return true
}
