package pbx

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/pbxkit/pbxkit/store"
)

// authenticator checks SIP digest credentials (RFC 3261 §22, RFC 2617 with qop=auth, RFC 8760 for
// SHA-256) against the HA1 hashes in the store.
//
// Nonces are stateless: a time stamp and random bytes signed with an HMAC key (noncekeys.go: one
// key per hour, shared by every node through the database), so challenges cost no memory, cannot
// be forged, and are accepted by every node. A nonce older than NonceTTL is answered with
// stale=true. Each nonce's highest nonce-count is remembered until the nonce expires, and a count
// that does not grow is a replay.
//
// An unknown user, a disabled extension and a wrong password take the same path: a hash over a
// dummy HA1 is computed and compared, and the answer is the same fresh challenge, so neither the
// bytes nor the time of the answer tell whether an extension exists.
type authenticator struct {
	realm string
	algs  []string
	ttl   time.Duration
	now   func() time.Time
	dir   store.Directory
	log   *slog.Logger
	m     *metrics
	keys  *nonceKeys
	dummy map[string]string // algorithm -> HA1 that matches no password

	mu  sync.Mutex
	ncs map[string]nonceUse // nonce -> highest nc seen

	bans *banList
}

type nonceUse struct {
	nc      int
	expires time.Time
}

func newAuthenticator(cfg Config, dir store.Directory, now func() time.Time, log *slog.Logger, m *metrics, cs clusterStore) *authenticator {
	a := &authenticator{
		realm: cfg.Domain, algs: cfg.DigestAlgorithms, ttl: cfg.NonceTTL, now: now, dir: dir, log: log, m: m,
		ncs:   make(map[string]nonceUse),
		bans:  &banList{limit: cfg.AuthFailLimit, window: cfg.AuthFailWindow, ban: cfg.AuthBanTime, ips: make(map[netip.Addr]*failures)},
		dummy: make(map[string]string),
	}
	var fetch func(context.Context, int64) ([]byte, error)
	if cs != nil {
		fetch = cs.NonceKey
		a.bans.share = cs
	}
	a.keys = newNonceKeys(cfg.NonceTTL, fetch)
	pw := randomToken(16)
	for _, alg := range []string{store.AlgMD5, store.AlgSHA256} {
		a.dummy[alg] = store.HA1(alg, "-", cfg.Domain, pw)
	}
	return a
}

// Errors from check; each is answered with a challenge, except errBanned (403) and store errors.
var (
	errNoCredentials  = errors.New("no credentials for this realm")
	errBadCredentials = errors.New("wrong credentials")
	errStaleNonce     = errors.New("stale nonce")
	errBanned         = errors.New("source banned after failed authentications")
)

// nonceLen: 8 bytes time stamp, 8 random, 16 of HMAC.
const nonceLen = 32

func (a *authenticator) newNonce() string {
	var b [nonceLen]byte
	now := a.now()
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixNano()))
	_, _ = rand.Read(b[8:16])
	key, _ := a.keys.key(now, now)
	copy(b[16:], a.mac(key, b[:16]))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (a *authenticator) mac(key, data []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(data)
	h.Write([]byte(a.realm))
	return h.Sum(nil)[:16]
}

// nonceAge verifies a nonce's signature, with the key of the generation its time stamp falls in,
// and returns its age.
func (a *authenticator) nonceAge(nonce string) (time.Duration, bool) {
	b, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(b) != nonceLen {
		return 0, false
	}
	issued := time.Unix(0, int64(binary.BigEndian.Uint64(b[:8])))
	now := a.now()
	key, ok := a.keys.key(issued, now)
	if !ok || !hmac.Equal(b[16:], a.mac(key, b[:16])) {
		return 0, false
	}
	return now.Sub(issued), true
}

// challenges returns one challenge header value per configured algorithm, sharing one nonce.
func (a *authenticator) challenges(stale bool) []string {
	nonce := a.newNonce()
	out := make([]string, 0, len(a.algs))
	for _, alg := range a.algs {
		c := digest.Challenge{Realm: a.realm, Nonce: nonce, Algorithm: alg, QOP: []string{"auth"}, Stale: stale}
		out = append(out, c.String())
	}
	return out
}

// check verifies the credentials in the named header (Authorization or Proxy-Authorization).
func (a *authenticator) check(ctx context.Context, req *sip.Request, header string, ip netip.Addr) (*store.Extension, error) {
	if a.bans.banned(ip, a.now()) {
		return nil, errBanned
	}
	var cred *digest.Credentials
	for _, h := range req.GetHeaders(header) {
		c, err := digest.ParseCredentials(h.Value())
		if err != nil {
			// Another scheme (RFC 4475 §3.3.7) or garbage: not credentials for us.
			continue
		}
		if c.Realm == a.realm {
			cred = c
			break
		}
	}
	if cred == nil {
		return nil, errNoCredentials
	}
	alg := strings.ToUpper(cred.Algorithm)
	if alg == "" {
		alg = store.AlgMD5
	}
	if !a.offers(alg) || cred.QOP != "auth" || cred.Username == "" || cred.URI == "" || cred.Cnonce == "" || cred.Nc <= 0 {
		// Malformed or from another dialect of digest: not a password guess, so not counted.
		a.log.Info("sip auth: unusable credentials", "src_ip", ip.String(), "user", cred.Username, "algorithm", cred.Algorithm, "qop", cred.QOP)
		return nil, errNoCredentials
	}

	// The response is checked against whatever nonce the client used, ours or not, so that a
	// nonce from before a restart (or from another node) with the right password is answered
	// stale=true instead of counting as a failure: after a restart every phone behind an office's
	// NAT would otherwise add a failure to the same source IP. From here unknown and known users do
	// the same work.
	ext, err := a.dir.Extension(ctx, cred.Username)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	ha1 := a.dummy[alg]
	usable := err == nil && ext.Enabled && ext.Realm == a.realm && ext.HA1(alg) != ""
	if usable {
		ha1 = ext.HA1(alg)
	}
	want := digestResponse(alg, ha1, cred.Nonce, cred.Nc, cred.Cnonce, cred.QOP, string(req.Method), cred.URI)
	match := subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(cred.Response))) == 1
	if !match || !usable {
		a.fail(ip, cred.Username, req, "wrong password or unknown user")
		return nil, errBadCredentials
	}
	age, ours := a.nonceAge(cred.Nonce)
	if !ours || age > a.ttl || age < -time.Minute {
		return nil, errStaleNonce
	}
	if !a.useNonce(cred.Nonce, cred.Nc) {
		a.fail(ip, cred.Username, req, "nonce count replayed")
		return nil, errBadCredentials
	}
	return ext, nil
}

func (a *authenticator) offers(alg string) bool {
	for _, x := range a.algs {
		if x == alg {
			return true
		}
	}
	return false
}

// useNonce records nc for nonce and reports whether it is higher than any seen before.
func (a *authenticator) useNonce(nonce string, nc int) bool {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.ncs) > 4096 {
		for k, u := range a.ncs {
			if now.After(u.expires) {
				delete(a.ncs, k)
			}
		}
	}
	u, ok := a.ncs[nonce]
	if ok && nc <= u.nc {
		return false
	}
	a.ncs[nonce] = nonceUse{nc: nc, expires: now.Add(a.ttl + time.Minute)}
	return true
}

// fail counts a failed authentication and logs it once, in a line a log-based ban tool can match:
// msg="sip auth failed" src_ip=IP.
func (a *authenticator) fail(ip netip.Addr, user string, req *sip.Request, reason string) {
	a.m.authFailures.Inc()
	a.log.Warn("sip auth failed", "src_ip", ip.String(), "user", user, "method", string(req.Method), "reason", reason)
	now := a.now()
	if a.bans.fail(ip, now) {
		a.m.bans.Inc()
		a.log.Warn("sip source banned", "src_ip", ip.String(), "for", a.bans.ban.String())
		a.bans.publish(ip, now.Add(a.bans.ban), a.log)
	}
}

// digestResponse computes the qop=auth digest response (RFC 2617 §3.2.2.1, RFC 8760).
func digestResponse(alg, ha1, nonce string, nc int, cnonce, qop, method, uri string) string {
	var h func() hash.Hash = md5.New
	if alg == store.AlgSHA256 {
		h = sha256.New
	}
	sum := func(s string) string {
		x := h()
		x.Write([]byte(s))
		return hex.EncodeToString(x.Sum(nil))
	}
	ha2 := sum(method + ":" + uri)
	return sum(ha1 + ":" + nonce + ":" + ncString(nc) + ":" + cnonce + ":" + qop + ":" + ha2)
}

func ncString(nc int) string {
	const hexdigits = "0123456789abcdef"
	var b [8]byte
	for i := 7; i >= 0; i-- {
		b[i] = hexdigits[nc&0xf]
		nc >>= 4
	}
	return string(b[:])
}

// banList counts failed authentications per source IP and bans an IP that fails too often.
//
// With a shared store a ban is written to the database, and every node reads the bans in force
// again when one changes (Postgres NOTIFY) and at each heartbeat: an address banned by one node
// is refused by all. The failures leading to a ban are counted per node (a count shared through
// the database would cost a write per failure): behind a balancer that spreads an attacker's
// guesses over N nodes, the ban comes after at most N times AuthFailLimit failures.
type banList struct {
	limit  int
	window time.Duration
	ban    time.Duration
	share  clusterStore // nil: bans are this node's only

	mu     sync.Mutex
	ips    map[netip.Addr]*failures
	shared map[netip.Addr]time.Time // bans in the database, as last read
}

// publish writes a ban for the other nodes; a failure leaves it this node's.
func (b *banList) publish(ip netip.Addr, until time.Time, log *slog.Logger) {
	if b.share == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := b.share.PutBan(ctx, ip.String(), until); err != nil {
		log.Warn("ban not shared with the other nodes", "src_ip", ip.String(), "error", err)
		return
	}
	b.mu.Lock()
	if f := b.ips[ip]; f != nil && f.bannedUntil.Equal(until) { // still the ban published
		f.published = time.Now()
	}
	b.mu.Unlock()
}

// setShared replaces the bans read from the database, which began to be read at read. A ban of
// this node's that it published before then and that is not among them was lifted (officepbx ban
// rm): it ends here too, and the failures count afresh.
func (b *banList) setShared(bans []store.Ban, read time.Time) {
	m := make(map[netip.Addr]time.Time, len(bans))
	for _, x := range bans {
		if ip, err := netip.ParseAddr(x.IP); err == nil {
			m[ip] = x.Until
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.shared = m
	for ip, f := range b.ips {
		if _, kept := m[ip]; !kept && !f.published.IsZero() && f.published.Before(read) {
			*f = failures{windowStart: f.windowStart}
		}
	}
}

type failures struct {
	count       int
	windowStart time.Time
	bannedUntil time.Time
	published   time.Time // when the ban until bannedUntil was written to the database; zero: not
}

func (b *banList) banned(ip netip.Addr, now time.Time) bool {
	if b.limit < 0 {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.ips[ip]
	if until, ok := b.shared[ip]; ok && now.Before(until) {
		return true
	}
	return f != nil && now.Before(f.bannedUntil)
}

// fail records one failure and reports whether it started a ban.
func (b *banList) fail(ip netip.Addr, now time.Time) bool {
	if b.limit < 0 {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.ips) > 65536 {
		for k, f := range b.ips {
			if now.Sub(f.windowStart) > b.window && now.After(f.bannedUntil) {
				delete(b.ips, k)
			}
		}
	}
	f := b.ips[ip]
	if f == nil {
		f = &failures{windowStart: now}
		b.ips[ip] = f
	}
	if now.Sub(f.windowStart) > b.window {
		f.count, f.windowStart = 0, now
	}
	f.count++
	if f.count >= b.limit && !now.Before(f.bannedUntil) {
		f.bannedUntil = now.Add(b.ban)
		f.count = 0
		f.published = time.Time{} // this ban is not in the database until publish says so
		return true
	}
	return false
}

// authorize authenticates req for the PBX: trusted sources pass without credentials (nil
// extension), others need digest credentials. proxy selects 407/Proxy-Authenticate (requests that
// start calls) over 401/WWW-Authenticate (REGISTER). When it returns false it has answered req.
func (p *PBX) authorize(ctx context.Context, req *sip.Request, tx sip.ServerTransaction, proxy bool) (*store.Extension, bool) {
	if ip, ok := sourceIP(req); ok && p.trusted(ip) {
		return nil, true
	}
	credHeader, chalHeader, code := "Authorization", "WWW-Authenticate", 401
	if proxy {
		credHeader, chalHeader, code = "Proxy-Authorization", "Proxy-Authenticate", 407
	}
	client, _ := p.clientIP(req)
	ext, err := p.auth.check(ctx, req, credHeader, client)
	switch {
	case err == nil:
		return ext, true
	case errors.Is(err, errBanned):
		p.reply(req, tx, 403, "")
	case errors.Is(err, errNoCredentials), errors.Is(err, errBadCredentials), errors.Is(err, errStaleNonce):
		var hs []sip.Header
		for _, c := range p.auth.challenges(errors.Is(err, errStaleNonce)) {
			hs = append(hs, sip.NewHeader(chalHeader, c))
		}
		p.reply(req, tx, code, "", hs...)
	default:
		p.replyStoreError(req, tx, "authentication", err)
	}
	return nil, false
}

func (p *PBX) trusted(ip netip.Addr) bool {
	for _, n := range p.cfg.Trusted {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}
