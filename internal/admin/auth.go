package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/pbxkit/pbxkit/store"
)

// TokenStore keeps the hash of the API token; *store.Store implements it.
type TokenStore interface {
	APITokenHash(ctx context.Context, name string) (string, error)
	CreateAPIToken(ctx context.Context, name, hash string) error
}

// tokenName is the stored token's name: one admin token per database.
const tokenName = "admin"

// MinTokenLen is the shortest token accepted from the configuration.
const MinTokenLen = 16

// settleToken returns the hash requests are checked against: of the token given, else the one
// stored, else of a new token, which is stored (its hash) and returned to be shown once.
func settleToken(ctx context.Context, ts TokenStore, given string) (hash []byte, generated string, err error) {
	if given != "" {
		if len(given) < MinTokenLen || strings.ContainsAny(given, " \t\r\n") {
			return nil, "", fmt.Errorf("admin: the API token must be at least %d characters without spaces", MinTokenLen)
		}
		return hashToken(given), "", nil
	}
	stored, err := ts.APITokenHash(ctx, tokenName)
	if err == nil {
		return decodeHash(stored)
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, "", fmt.Errorf("admin: reading the API token: %w", err)
	}
	token := newToken()
	hash = hashToken(token)
	err = ts.CreateAPIToken(ctx, tokenName, hex.EncodeToString(hash))
	if errors.Is(err, store.ErrConflict) {
		// Another node sharing the database made one first: take that.
		if stored, err = ts.APITokenHash(ctx, tokenName); err == nil {
			return decodeHash(stored)
		}
	}
	if err != nil {
		return nil, "", fmt.Errorf("admin: storing the API token: %w", err)
	}
	return hash, token, nil
}

func decodeHash(stored string) ([]byte, string, error) {
	h, err := hex.DecodeString(stored)
	if err != nil || len(h) != sha256.Size {
		return nil, "", errors.New("admin: the stored API token hash is damaged; start with --api-token or delete the api_tokens row")
	}
	return h, "", nil
}

// newToken returns 32 random bytes, URL-safe base64: 256 bits no one guesses.
func newToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func hashToken(t string) []byte {
	h := sha256.Sum256([]byte(t))
	return h[:]
}

// authorized lets requests with the right bearer token through to next; others get 401. Hashes
// are compared, in constant time, so neither the token's length nor its prefix leaks.
func (s *Server) authorized(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := bearer(r.Header.Get("Authorization"))
		if !ok || subtle.ConstantTimeCompare(hashToken(got), s.hash) != 1 {
			s.log.Warn("admin API: request without a valid token", "remote", r.RemoteAddr, "path", r.URL.Path, "token_given", ok)
			w.Header().Set("WWW-Authenticate", `Bearer realm="pbxkit"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong API token (Authorization: Bearer TOKEN)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearer reads "Bearer TOKEN" (the scheme is case-insensitive, RFC 6750 §2.1).
func bearer(h string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
