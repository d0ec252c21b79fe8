package store

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"hash"
	"strings"
)

// Digest algorithms whose HA1 the store keeps.
const (
	AlgMD5    = "MD5"     // RFC 2617, what every phone speaks
	AlgSHA256 = "SHA-256" // RFC 8760
)

func normalizeAlg(alg string) string {
	a := strings.ToUpper(strings.TrimSuffix(strings.ToLower(alg), "-sess"))
	switch a {
	case "", AlgMD5:
		return AlgMD5
	case AlgSHA256:
		return AlgSHA256
	}
	return a
}

// HA1 computes the digest HA1 = H(username ":" realm ":" password) (RFC 3261 §22.4, RFC 8760 §2)
// in lowercase hex. An unknown algorithm gives "".
func HA1(alg, username, realm, password string) string {
	var h hash.Hash
	switch normalizeAlg(alg) {
	case AlgMD5:
		h = md5.New()
	case AlgSHA256:
		h = sha256.New()
	default:
		return ""
	}
	h.Write([]byte(username + ":" + realm + ":" + password))
	return hex.EncodeToString(h.Sum(nil))
}

func equalHex(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(strings.ToLower(a)), []byte(strings.ToLower(b))) == 1
}
