package pbx

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/pbxkit/pbxkit/dialplan"
)

// Config configures a PBX. The zero value of every field means its default; the field comments are
// the reference for users.
type Config struct {
	// SIP is the address the PBX listens on, for UDP and TCP alike. Port 0 picks a free port (read
	// it back with UDPAddr and TCPAddr). Default "0.0.0.0:5060".
	SIP string

	// Database is the store DSN: "postgres://...", "sqlite:PATH" or "sqlite::memory:". It is used
	// when no store is given with WithStore; the PBX then owns the store and closes it on Shutdown.
	Database string

	// Domain is the PBX's SIP domain, used as the digest realm. Extensions' credentials are hashed
	// with it, so changing it needs every password set again. Default "pbxkit".
	Domain string

	// Trusted lists source networks whose requests need no digest authentication (trunks, load
	// generators, an SBC in front of the PBX).
	Trusted []netip.Prefix

	// NodeID names this PBX among several sharing one database; it marks the registrations it
	// holds and the branch of requests it sends (loop detection). Default: the host name.
	NodeID string

	// UserAgent is sent in the Server and User-Agent headers. Default "pbxkit".
	UserAgent string

	// MaxContacts is how many contacts one extension may register at once. Default 5.
	MaxContacts int

	// MinExpires is the shortest registration accepted; shorter ones get 423 Interval Too Brief
	// with Min-Expires. Default 60 s.
	MinExpires time.Duration
	// MaxExpires is the longest registration granted; longer ones are shortened. Default 3600 s.
	MaxExpires time.Duration
	// DefaultExpires applies to a REGISTER that names no expiry. Default 3600 s, or MaxExpires
	// when that is shorter.
	DefaultExpires time.Duration

	// DigestAlgorithms lists the digest algorithms offered, one challenge header each, in order of
	// preference: "MD5" and/or "SHA-256" (RFC 8760). Default MD5 only, as Asterisk and Kamailio
	// do: some phones fail on a challenge they do not know instead of skipping it (Debian's baresip
	// 1.0 stops with "Function not implemented" when SHA-256 is offered at all), and some tools
	// (sipp among them) take the first header whatever it says. Clients use the topmost challenge
	// they support (RFC 8760 §2.4), so {"SHA-256", "MD5"} has SHA-256 used where the phone knows it
	// and MD5 otherwise, and {"SHA-256"} alone shuts MD5 out where every phone speaks SHA-256.
	DigestAlgorithms []string
	// NonceTTL is how long a digest nonce stays fresh; an older one is answered with stale=true.
	// Default 5 minutes.
	NonceTTL time.Duration

	// AuthFailLimit failed authentications from one source IP within AuthFailWindow ban that IP for
	// AuthBanTime: its requests are answered 403 without looking at credentials. Defaults 10,
	// 1 minute, 5 minutes. A negative AuthFailLimit turns banning off.
	AuthFailLimit  int
	AuthFailWindow time.Duration
	AuthBanTime    time.Duration

	// MaxBodyBytes is the largest message body accepted; larger gets 413. Default 16384.
	MaxBodyBytes int
	// MaxURILength is the longest Request-URI accepted; longer gets 414. Default 1024.
	MaxURILength int

	// PurgeInterval is how often expired registrations are deleted. Default 30 s.
	PurgeInterval time.Duration

	// RingTimeout is how long a call rings before the caller gets 480, unless the extension sets
	// its own. Default 30 s.
	RingTimeout time.Duration
	// MaxCalls limits concurrent calls; beyond it new calls get 503 with Retry-After. 0: no limit.
	MaxCalls int
	// AckTimeout is how long an answered call waits for the caller's ACK before hanging up both
	// sides. Default 32 s (64*T1).
	AckTimeout time.Duration
	// PassRedirects passes a callee's 3xx with its Contacts on to the caller instead of following
	// it (the default follows, at most 5 hops, and keeps the callee's contacts hidden).
	PassRedirects bool
	// CopyHeaders names headers of a caller's INVITE passed on to the callee (for example
	// "P-Asserted-Identity"). None by default: the legs share nothing but what is chosen here.
	CopyHeaders []string

	// Dialplan routes new calls in Go (see package dialplan). When DialplanScript is set too, the
	// Go handler runs first and the script only sees calls it left undecided. With neither, a call
	// goes to the extension named by the Request-URI: 404 unknown, 410 disabled, 486 do not
	// disturb, 480 not registered, else every registered contact rings.
	Dialplan dialplan.Handler
	// DialplanScript is the path of a Lua dialplan (docs/dialplan.md). It is compiled at New (a
	// broken script fails New) and reloaded when a .lua file in its folder changes, or on
	// ReloadDialplan.
	DialplanScript string
	// DialplanTimeout bounds the time a Lua script runs for one call, not counting the time its
	// calls ring. Default 1 s.
	DialplanTimeout time.Duration
	// DialplanLocation is the time zone of the script's pbx.time. Default time.Local.
	DialplanLocation *time.Location

	// RTPPortMin and RTPPortMax turn the media relay on: every call's RTP and RTCP flow through a
	// pair of ports from this range for each side (two pairs a call), and each side's SDP names
	// only the PBX. A call that finds no free pair gets 503. Both zero: SDP passes through and
	// media flows between the phones.
	RTPPortMin, RTPPortMax int
	// RTPAddress is the IP the relay binds and names in SDP. Default: the IP of SIP, which must
	// then be a specific address, not 0.0.0.0.
	RTPAddress string
	// Codecs are the codecs allowed through the relay; offers are filtered to them and an offer
	// without any gets 488. Default PCMU, PCMA, G722, opus, telephone-event.
	Codecs []string
	// MediaTimeout hangs up an answered call when no RTP arrived from either side for this long,
	// unless it is on hold. Default 60 s; negative turns it off.
	MediaTimeout time.Duration
}

// Defaults.
const (
	DefaultSIP         = "0.0.0.0:5060"
	DefaultDomain      = "pbxkit"
	DefaultUserAgent   = "pbxkit"
	DefaultMaxContacts = 5
)

func (c Config) withDefaults() Config {
	if c.SIP == "" {
		c.SIP = DefaultSIP
	}
	if c.Domain == "" {
		c.Domain = DefaultDomain
	}
	if c.UserAgent == "" {
		c.UserAgent = DefaultUserAgent
	}
	if c.NodeID == "" {
		c.NodeID = hostname()
	}
	if c.MaxContacts == 0 {
		c.MaxContacts = DefaultMaxContacts
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.MinExpires, 60*time.Second)
	def(&c.MaxExpires, 3600*time.Second)
	def(&c.DefaultExpires, min(3600*time.Second, c.MaxExpires))
	def(&c.NonceTTL, 5*time.Minute)
	def(&c.AuthFailWindow, time.Minute)
	def(&c.AuthBanTime, 5*time.Minute)
	def(&c.PurgeInterval, 30*time.Second)
	def(&c.RingTimeout, 30*time.Second)
	if len(c.DigestAlgorithms) == 0 {
		c.DigestAlgorithms = []string{"MD5"}
	}
	if c.AuthFailLimit == 0 {
		c.AuthFailLimit = 10
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 16384
	}
	if c.MaxURILength == 0 {
		c.MaxURILength = 1024
	}
	return c
}

// mediaIP is the address of the media relay.
func (c Config) mediaIP() (net.IP, error) {
	host := c.RTPAddress
	if host == "" {
		host, _, _ = net.SplitHostPort(c.SIP)
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.IsUnspecified() {
		return nil, fmt.Errorf("rtp address %q: the media relay needs a specific IP to name in SDP (set RTPAddress, or SIP to a specific address)", host)
	}
	return ip, nil
}

func (c Config) validate() error {
	var errs []error
	if c.RTPPortMin != 0 || c.RTPPortMax != 0 {
		if _, err := c.mediaIP(); err != nil {
			errs = append(errs, err)
		}
		if c.RTPPortMin < 1024 || c.RTPPortMax > 65535 || c.RTPPortMax < c.RTPPortMin+3 {
			errs = append(errs, fmt.Errorf("rtp ports %d-%d: want a range within 1024-65535 with room for two pairs", c.RTPPortMin, c.RTPPortMax))
		}
	}
	if _, _, err := net.SplitHostPort(c.SIP); err != nil {
		errs = append(errs, fmt.Errorf("sip address %q: %w", c.SIP, err))
	}
	if strings.ContainsAny(c.Domain, " \t\r\n\"<>@;:") {
		errs = append(errs, fmt.Errorf("domain %q: must be a host name", c.Domain))
	}
	for _, a := range c.DigestAlgorithms {
		if a != "MD5" && a != "SHA-256" {
			errs = append(errs, fmt.Errorf("digest algorithm %q: want MD5 or SHA-256", a))
		}
	}
	if c.MinExpires < time.Second || c.MaxExpires < c.MinExpires {
		errs = append(errs, fmt.Errorf("expires: need 1s <= min (%v) <= max (%v)", c.MinExpires, c.MaxExpires))
	}
	if c.DefaultExpires < c.MinExpires || c.DefaultExpires > c.MaxExpires {
		errs = append(errs, fmt.Errorf("default expires %v: must lie between min and max", c.DefaultExpires))
	}
	if c.MaxContacts < 1 {
		errs = append(errs, fmt.Errorf("max contacts %d: must be at least 1", c.MaxContacts))
	}
	if c.MaxBodyBytes < 0 || c.MaxURILength < 0 {
		errs = append(errs, errors.New("max body and URI sizes must not be negative"))
	}
	return errors.Join(errs...)
}

// ParseTrusted parses a comma-separated list of CIDRs or single addresses ("10.0.0.0/8,192.0.2.7").
func ParseTrusted(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("trusted network %q: not an address or CIDR", f)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("trusted network %q: not an address or CIDR", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
