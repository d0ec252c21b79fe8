package pbx

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// A node asks another for a feature (clustercalls.go) with a signed header, so that the nodes
// need not trust each other's addresses: behind the balancer they authenticate phones, and a
// node's address may be shared with the balancer's. The signature is an HMAC of the feature, its
// number and a time stamp, with the shared key of the time stamp's generation (the nonce keys,
// noncekeys.go: every node reads them from the database), in a domain of its own so that it can
// never be taken for a nonce. A signature older or newer than featureSigWindow is refused.
//
//	X-Pbxkit-Feature: unpark 701;t=1796040000;sig=<base64url HMAC-SHA256>

// featureSigWindow is how far a signed feature's time stamp may be from now.
const featureSigWindow = 30 * time.Second

// featureSigDomain starts every signed text: a signature of something else never matches.
const featureSigDomain = "pbxkit node feature\x00"

// signFeature is the header value asking for feature on number, signed now.
func (p *PBX) signFeature(feature, number string) string {
	now := p.now()
	key, _ := p.auth.keys.key(now, now)
	ts := strconv.FormatInt(now.Unix(), 10)
	return feature + " " + number + ";t=" + ts + ";sig=" + featureMAC(key, feature, number, ts)
}

func featureMAC(key []byte, feature, number, ts string) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(featureSigDomain + feature + " " + number + "\x00" + ts))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// parseFeature splits a header value into the feature, its number and its signature parameters.
func parseFeature(v string) (feature, number, ts, sig string) {
	head, params, _ := strings.Cut(v, ";")
	feature, number, _ = strings.Cut(strings.TrimSpace(head), " ")
	for _, kv := range strings.Split(params, ";") {
		k, val, _ := strings.Cut(strings.TrimSpace(kv), "=")
		switch k {
		case "t":
			ts = val
		case "sig":
			sig = val
		}
	}
	return feature, strings.TrimSpace(number), ts, sig
}

// featureSigned reports whether sig signs feature and number at ts, within featureSigWindow of
// now, with the key of ts's generation.
func (p *PBX) featureSigned(feature, number, ts, sig string) bool {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return false
	}
	at, now := time.Unix(sec, 0), p.now()
	if d := now.Sub(at); d > featureSigWindow || d < -featureSigWindow {
		return false
	}
	key, ok := p.auth.keys.key(at, now)
	return ok && hmac.Equal([]byte(sig), []byte(featureMAC(key, feature, number, ts)))
}
