package pbx

import (
	"net/netip"
	"sync"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/store"
)

// Guessing a mailbox PIN by calling again and again: wrong PINs are counted per mailbox and per
// source address across calls (v.pins); after pinguard.DefaultLimit in a row the mailbox (or the
// source) is locked out, 15 minutes, doubling with each lockout. A locked mailbox answers
// "invalid" to any PIN without checking (and without the cost of hashing it). Each wrong PIN
// also counts as a failed authentication of its source (Config.AuthFailLimit), so a source
// guessing PINs gets banned like one guessing passwords.

// dummyPIN is a mailbox whose PIN nobody knows: checking a PIN against it costs what checking
// one against a real mailbox costs, so the time of a refusal does not tell whether the mailbox
// exists.
var dummyPIN = sync.OnceValue(func() *store.Extension {
	e := &store.Extension{}
	if err := e.SetPIN(randomDigits()); err != nil {
		return &store.Extension{}
	}
	return e
})

// randomDigits is an unguessable PIN for dummyPIN.
func randomDigits() string {
	b := []byte(randomToken(4))
	for i := range b {
		b[i] = '0' + b[i]%10
	}
	return string(b)
}

// pinKeys are the guard's keys of a PIN try: the mailbox, and the source address when known
// (the phone's, behind one of Config.Proxies: not the balancer's).
func (v *voicemailApp) pinKeys(c *b2bua.Call, number string) (mailbox, source string, ip netip.Addr) {
	ip, ok := v.clientIP(c.Request())
	if ok {
		source = "src:" + ip.String()
	}
	return "mailbox:" + number, source, ip
}

// checkPIN reports whether pin opens mailbox number (ext, nil when there is none). A locked
// mailbox or source is refused without checking.
func (v *voicemailApp) checkPIN(c *b2bua.Call, ext *store.Extension, number, pin string) bool {
	mk, sk, ip := v.pinKeys(c, number)
	for _, k := range []string{mk, sk} {
		if k == "" {
			continue
		}
		if locked, until := v.pins.Locked(k); locked {
			v.log.Warn("voicemail login refused: locked out", "ext", number, "key", k, "src_ip", ip.String(),
				"until", until.UTC().Format("15:04:05"), "call_id", c.ID())
			return false
		}
	}
	if ext == nil || !ext.HasPIN() {
		dummyPIN().CheckPIN(pin + "#") // the same work as a real check (never a match)
		return false
	}
	if !ext.CheckPIN(pin) {
		return false
	}
	v.pins.Succeed(mk)
	return true
}

// pinFailed counts a wrong PIN for the mailbox and the source, logs a lockout it starts, and
// feeds the source's failed authentications (the ban of Config.AuthFailLimit).
func (v *voicemailApp) pinFailed(c *b2bua.Call, number string) {
	mk, sk, ip := v.pinKeys(c, number)
	for _, k := range []string{mk, sk} {
		if k == "" {
			continue
		}
		if until := v.pins.Fail(k); !until.IsZero() {
			v.log.Warn("voicemail locked out after wrong PINs", "ext", number, "key", k, "src_ip", ip.String(),
				"until", until.UTC().Format("15:04:05"), "call_id", c.ID())
		}
	}
	if v.authFail != nil && ip.IsValid() {
		v.authFail(ip, number, c.Request(), "wrong voicemail PIN")
	}
}
