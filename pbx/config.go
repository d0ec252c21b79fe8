package pbx

import (
	"cmp"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pbxkit/pbxkit/b2bua"

	"github.com/pbxkit/pbxkit/dialplan"
	"github.com/pbxkit/pbxkit/media"
)

// Config configures a PBX. The zero value of every field means its default (the Default...
// constants); the field comments are the reference for users. Validate says whether New will
// accept a Config, and why not: a negative duration or count is an error unless its comment gives
// negative a meaning.
type Config struct {
	// SIP is the address the PBX listens on, for UDP and TCP alike, as host:port. Port 0 picks a
	// free port (read it back with UDPAddr and TCPAddr). Default "0.0.0.0:5060".
	SIP string

	// RecordSpool is a file where call records wait, on local disk, until the database has taken
	// them: with it no record is lost to a database outage, a shutdown or a crash (they are
	// written at the next start, each once). Empty: records wait in memory only, and a database
	// still away at shutdown loses them (counted in pbxkit_call_records_lost_total).
	RecordSpool string

	// DataDir is the PBX's folder for files the dialplan writes: call:record's paths are relative
	// to it, and a script cannot record outside it. Empty: call:record refuses to record. The
	// voicemail application keeps its messages and prompts under DataDir/voicemail (with the media
	// relay on; without a DataDir there is no built-in voicemail). A relative DataDir is made
	// absolute (against the working directory at New), as the message paths stored under it are.
	DataDir string

	// Database is the store DSN: "postgres://...", "sqlite:PATH" or "sqlite::memory:". It is used
	// when no store is given with WithStore; the PBX then owns the store and closes it on Shutdown.
	Database string

	// Domain is the PBX's SIP domain, used as the digest realm: a host name. Extensions'
	// credentials are hashed with it, so changing it needs every password set again. Default
	// "pbxkit".
	Domain string

	// Trusted lists source networks whose requests need no digest authentication (trunks, load
	// generators, an SBC in front of the PBX). Their connections do not count toward
	// MaxConnectionsPerSource either.
	Trusted []netip.Prefix

	// Proxies lists SIP proxies in front of the PBX (a load balancer such as Kamailio's
	// dispatcher, in front of several nodes). Their requests are authenticated as any other (list
	// them in Trusted too only when the proxy authenticates phones itself); but bans, the
	// per-source rate limit (SourceRate) and log lines take the client's address from the Via the
	// proxy added below its own, not the proxy's address.
	Proxies []netip.Prefix

	// MaxConnections is how many TCP connections the PBX keeps open at once, from all sources;
	// one more is closed as soon as it is accepted. It keeps file descriptors for the rest of the
	// PBX (media, database) when many hosts connect. Default 4096; negative: no limit.
	MaxConnections int
	// MaxConnectionsPerSource is how many TCP connections one source keeps open at once: an IPv4
	// address, or an IPv6 /64. One more is closed as soon as it is accepted (metric
	// pbxkit_sip_connections_refused_total). Trusted networks are exempt. Default 32;
	// negative: no limit.
	MaxConnectionsPerSource int
	// ConnIdleTimeout closes a TCP connection that has carried no SIP message, either way, for this
	// long, unless an extension registered over it: such a connection stays open while the
	// registration lives (calls to the phone come over it). CRLF keep-alives do not count as
	// messages. Default 60 s; negative: never.
	ConnIdleTimeout time.Duration
	// MessageTimeout closes a TCP connection on which a SIP message has begun but not ended this
	// long after its first byte (a header sent a byte at a time), or on which one write of the PBX
	// has waited this long for the peer to read. Default 20 s; negative: never.
	MessageTimeout time.Duration

	// TLS is the address the PBX serves SIP over TLS on (RFC 3261 §26, RFC 5630), as host:port,
	// usually port 5061; empty: no TLS. Its connections are held to the same limits and timeouts
	// as TCP (MaxConnections and MaxConnectionsPerSource count TCP and TLS connections together,
	// ConnIdleTimeout, MessageTimeout), and a handshake must end within TLSHandshakeTimeout. Port
	// 0 picks a free port (read it back with TLSAddr). A phone registered over TLS is called over
	// its TLS connection, and the PBX's Contact toward it says ";transport=tls" (sips: toward a
	// phone that used a sips: URI).
	TLS string
	// TLSCert and TLSKey are the PEM files of the certificate chain and of its private key, both
	// needed with TLS; New fails when they do not load. They are read again when either file
	// changes (looked at every TLSReloadInterval) and on ReloadTLS (officepbx: SIGHUP): new
	// connections get the new certificate, open ones keep theirs. A pair that does not load (a
	// renewal caught half written) is logged and the certificate in use stays.
	TLSCert, TLSKey string
	// TLSReloadInterval is how often the certificate files are looked at for changes (their
	// modification time and size). Default 10 s; negative: only ReloadTLS reads them again.
	TLSReloadInterval time.Duration
	// TLSHandshakeTimeout closes a TLS connection whose handshake has not ended this long after
	// its first byte was awaited: a client that connects and says nothing, or too little, holds a
	// connection no longer. Default 10 s.
	TLSHandshakeTimeout time.Duration

	// ExternalIP is the address the PBX names as its own in SIP (the Via, Contact and From/To host
	// of the requests it sends, the Contact of its answers) and in the SDP the media relay writes
	// (c= and o=), for a PBX behind NAT: it binds a private address or 0.0.0.0 (SIP, RTPAddress)
	// and phones outside reach it at this public one, which the NAT forwards (the SIP ports and the
	// RTP range). A specific IP address. With it the relay may bind 0.0.0.0. Default: the bound
	// addresses are named.
	ExternalIP string

	// NodeID names this PBX among several sharing one database; it marks the registrations it
	// holds and the branch of requests it sends (loop detection). Default: the host name.
	NodeID string
	// NodeHTTP is the admin HTTP address this node announces in the nodes table (officepbx
	// nodes lists it); empty when it serves none.
	NodeHTTP string
	// Version is the software version this node announces (nodes table, pbxkit_node_info).
	Version string
	// HeartbeatInterval is how often this node refreshes its row in the nodes table (with a store
	// shared by several nodes); a node that missed NodeStaleBeats beats counts as dead, and its
	// queue agent claims expire. Default 2 s.
	HeartbeatInterval time.Duration

	// UserAgent is sent in the Server and User-Agent headers; no control characters. Default
	// "pbxkit".
	UserAgent string

	// MaxContacts is how many contacts one extension may register at once. Default 5; at least 1.
	MaxContacts int
	// ContactsFull says what a REGISTER that would go past MaxContacts gets:
	// ContactsReplaceOldest (the default) removes the least recently refreshed other contacts to
	// make room, as a phone whose NAT mapping changed needs; ContactsRefuse answers 403.
	ContactsFull string

	// MinExpires is the shortest registration accepted; shorter ones get 423 Interval Too Brief
	// with Min-Expires. Default 60 s; at least 1 s.
	MinExpires time.Duration
	// MaxExpires is the longest registration granted; longer ones are shortened. Default 3600 s;
	// at least MinExpires.
	MaxExpires time.Duration
	// DefaultExpires applies to a REGISTER that names no expiry. Default 3600 s, or MaxExpires
	// when that is shorter; between MinExpires and MaxExpires.
	DefaultExpires time.Duration

	// DigestAlgorithms lists the digest algorithms offered, one challenge header each, in order of
	// preference: "MD5" and/or "SHA-256" (RFC 8760). Default MD5 only, as Asterisk and Kamailio
	// do: some phones fail on a challenge they do not know instead of skipping it (Debian's baresip
	// 1.0 stops with "Function not implemented" when SHA-256 is offered at all), and some tools
	// (sipp among them) take the first header whatever it says. Clients use the topmost challenge
	// they support (RFC 8760 §2.4), so {"SHA-256", "MD5"} has SHA-256 used where the phone knows it
	// and MD5 otherwise, and {"SHA-256"} alone shuts MD5 out where every phone speaks SHA-256.
	DigestAlgorithms []string
	// SubscriptionMinExpires is the shortest busy-lamp subscription (SUBSCRIBE to the dialog event
	// package, RFC 4235) accepted; a SUBSCRIBE asking for less, but not 0, gets 423 Interval Too
	// Brief with Min-Expires. Default 60 s; at least 1 s.
	SubscriptionMinExpires time.Duration
	// SubscriptionMaxExpires is the longest subscription granted; longer ones are shortened. A
	// SUBSCRIBE without Expires gets RFC 4235's default of 3600 s, or this when it is shorter.
	// Default 3600 s; at least SubscriptionMinExpires.
	SubscriptionMaxExpires time.Duration
	// MaxSubscriptions is how many subscriptions the PBX keeps at once; one more gets 503 with
	// Retry-After. Each costs a goroutine and a few hundred bytes. Default 10000; negative: no
	// limit.
	MaxSubscriptions int
	// MaxSubscriptionsPerSource is how many subscriptions one source keeps at once (an IPv4
	// address, or an IPv6 /64); one more gets 403. A desk phone with 40 busy-lamp keys holds 40, an
	// office of them behind one NAT many times that. Trusted networks are exempt. Default 500;
	// negative: no limit.
	MaxSubscriptionsPerSource int

	// NonceTTL is how long a digest nonce stays fresh; an older one is answered with stale=true.
	// Default 5 minutes.
	NonceTTL time.Duration

	// AuthFailLimit failed authentications from one source IP within AuthFailWindow ban that IP for
	// AuthBanTime: its requests are answered 403 without looking at credentials. Defaults 10,
	// 1 minute, 5 minutes. A negative AuthFailLimit turns banning off.
	AuthFailLimit  int
	AuthFailWindow time.Duration
	AuthBanTime    time.Duration

	// SourceRate and SourceBurst limit the new requests (outside a dialog) one source IP outside
	// Trusted may send: SourceRate a second on average, SourceBurst at once. Past that its requests
	// are dropped unanswered before the PBX spends anything on them (a flood gets no replies to
	// amplify). Defaults 50 and 200: an office of phones behind one NAT re-registering at once
	// fits. A negative SourceRate turns the limit off.
	SourceRate, SourceBurst int
	// OverloadLatency sheds load: while the Go scheduler's 99th percentile delay (how long work
	// that is ready waits for a CPU) exceeds it, new requests outside a dialog get a stateless 503
	// with Retry-After, so the PBX keeps serving the calls it has instead of slowing everything
	// down. Requests inside a dialog are never shed. Default 100 ms; negative turns it off.
	OverloadLatency time.Duration

	// UDPReadBuffer is the receive buffer asked for the SIP UDP socket, so that a burst of
	// requests waits in the kernel instead of being dropped (the kernel's default is about
	// 208 KB; Kamailio raises it too). The kernel grants at most net.core.rmem_max; a smaller
	// grant is logged. Default 4 MiB.
	UDPReadBuffer int

	// MaxBodyBytes is the largest message body accepted; larger gets 413. Default 16384 bytes.
	MaxBodyBytes int
	// MaxURILength is the longest Request-URI accepted; longer gets 414. Default 1024 bytes.
	MaxURILength int

	// PurgeInterval is how often expired registrations are deleted. Default 30 s.
	PurgeInterval time.Duration

	// TrunkRefresh is how often the outbound trunks are read from the store again (a trunk added
	// with the CLI is used from then on). Default 5 s.
	TrunkRefresh time.Duration
	// TrunkExpires is the registration time asked of a trunk's provider; it is refreshed after
	// three quarters of what the provider grants. Default 600 s.
	TrunkExpires time.Duration
	// TrunkRetryMin and TrunkRetryMax bound the wait after a failed trunk registration: the first
	// retry after TrunkRetryMin, doubling per failure up to TrunkRetryMax, each 50-100% of that
	// (RFC 5626 §4.5). Defaults 10 s and 5 min.
	TrunkRetryMin, TrunkRetryMax time.Duration

	// RingTimeout is how long a call rings before the caller gets 480, unless the extension sets
	// its own. Default 30 s; at most MaxRingTimeout (1 h).
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
	// "P-Asserted-Identity"); each must be a header name (an RFC 3261 token). None by default: the
	// legs share nothing but what is chosen here.
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
	// calls ring. Default 1 s; at most MaxDialplanTimeout (1 min).
	DialplanTimeout time.Duration
	// DialplanLocation is the time zone of the script's pbx.time. Default time.Local.
	DialplanLocation *time.Location
	// PauseCode is the feature code a queue agent dials to pause itself in all its queues, or to
	// unpause when paused in all of them (default routing answers 603 "Agent Paused" or "Agent
	// Unpaused"). Default DefaultPauseCode; "off" turns it off.
	PauseCode string

	// RTPPortMin and RTPPortMax turn the media relay on: every call's RTP and RTCP flow through a
	// pair of ports from this range for each side (two pairs a call), and each side's SDP names
	// only the PBX. Pairs start at even ports (RFC 3550 §11), so an odd RTPPortMin is rounded up;
	// the range must lie within MinRTPPort-MaxRTPPort and hold two pairs. A call that finds no
	// free pair gets 503. Both zero: SDP passes through and media flows between the phones.
	RTPPortMin, RTPPortMax int
	// RTPAddress is the IP the relay binds and names in SDP: a specific address, not 0.0.0.0.
	// Default: the IP of SIP, which must then be a specific address itself.
	RTPAddress string
	// Codecs are the codecs allowed through the relay; offers are filtered to them and an offer
	// without any gets 488. Default DefaultCodecs(): PCMU, PCMA, G722, opus, telephone-event.
	Codecs []string
	// MediaTimeout hangs up an answered call (both sides, the silent one named in the record)
	// when one side has sent no RTP for this long although it should be sending: not on hold, and
	// the other side receiving. Default 60 s; negative turns it off.
	MediaTimeout time.Duration
	// RecordingsDir is the folder call recordings are written into (Call.RecordCall, the
	// dialplan's call:record_call(), extensions with recording on, the admin API): one stereo WAV
	// file per recording, named after the call's ID and the time. It is created with the first
	// recording. Default DefaultRecordingsDir inside DataDir (relative to the working directory
	// without a DataDir); made absolute as DataDir is.
	RecordingsDir string

	// Features are the feature codes default routing answers (directed and group pickup) and call
	// park; see Features.
	Features Features
}

// Defaults: what New uses for a field left at its zero value.
const (
	DefaultSIP                 = "0.0.0.0:5060"
	DefaultDomain              = "pbxkit"
	DefaultPauseCode           = "*45"
	DefaultUserAgent           = "pbxkit"
	DefaultMaxContacts         = 5
	DefaultUDPReadBuffer       = 4 << 20
	DefaultSourceRate          = 50
	DefaultSourceBurst         = 200
	DefaultOverloadLatency     = 100 * time.Millisecond
	DefaultContactsFull        = ContactsReplaceOldest
	DefaultMinExpires          = 60 * time.Second
	DefaultMaxExpires          = 3600 * time.Second
	DefaultRegistrationExpires = 3600 * time.Second // for DefaultExpires, capped at MaxExpires
	DefaultDigestAlgorithm     = DigestMD5          // DigestAlgorithms holds it alone by default
	DefaultNonceTTL            = 5 * time.Minute
	DefaultAuthFailLimit       = 10
	DefaultAuthFailWindow      = time.Minute
	DefaultAuthBanTime         = 5 * time.Minute
	DefaultMaxBodyBytes        = 16384
	DefaultMaxURILength        = 1024
	DefaultPurgeInterval       = 30 * time.Second
	DefaultHeartbeatInterval   = 2 * time.Second
	DefaultTrunkRefresh        = 5 * time.Second
	DefaultTrunkExpires        = 600 * time.Second
	DefaultTrunkRetryMin       = 10 * time.Second
	DefaultTrunkRetryMax       = 5 * time.Minute
	DefaultRingTimeout         = b2bua.DefaultRingTimeout
	DefaultAckTimeout          = b2bua.DefaultAckTimeout
	DefaultDialplanTimeout     = time.Second
	DefaultMediaTimeout        = 60 * time.Second
	DefaultRecordingsDir       = "recordings"
)

// Defaults of the busy-lamp subscriptions (docs/architecture.md, "Busy lamps").
const (
	DefaultSubscriptionMinExpires    = 60 * time.Second
	DefaultSubscriptionMaxExpires    = 3600 * time.Second
	DefaultMaxSubscriptions          = 10000
	DefaultMaxSubscriptionsPerSource = 500
	// DialogEventExpires is what a SUBSCRIBE without Expires gets (RFC 4235 §3.2), at most
	// SubscriptionMaxExpires.
	DialogEventExpires = 3600 * time.Second
)

// Defaults of the connection limits and timeouts (docs/architecture.md, "Connections").
const (
	DefaultMaxConnections          = 4096
	DefaultMaxConnectionsPerSource = 32
	DefaultConnIdleTimeout         = 60 * time.Second
	// DefaultMessageTimeout is Kamailio's tcp_msg_read_timeout: long enough for a large message
	// over a poor mobile link.
	DefaultMessageTimeout = 20 * time.Second
	// DefaultTLSHandshakeTimeout is what Kamailio and Go's net/http use, give or take: a phone
	// on a poor link completes a handshake in well under it.
	DefaultTLSHandshakeTimeout = 10 * time.Second
	DefaultTLSReloadInterval   = 10 * time.Second
)

// Limits that Validate enforces beyond "not negative".
const (
	// MaxRingTimeout is the longest RingTimeout: a call ringing for longer has been forgotten.
	MaxRingTimeout = time.Hour
	// MaxDialplanTimeout is the longest DialplanTimeout: a script that computes for longer holds a
	// Lua state and a caller in silence.
	MaxDialplanTimeout = time.Minute
	// MinRTPPort and MaxRTPPort bound RTPPortMin and RTPPortMax: no privileged ports, and at least
	// two RTP/RTCP pairs in between, the ports of one call.
	MinRTPPort = 1024
	MaxRTPPort = 65535
)

// Digest algorithms for DigestAlgorithms (RFC 8760).
const (
	DigestMD5    = "MD5"
	DigestSHA256 = "SHA-256"
)

// DefaultCodecs returns the codecs the media relay allows when Config.Codecs is empty: those of
// package media, as a copy the caller may change.
func DefaultCodecs() []string { return slices.Clone(media.DefaultCodecs) }

// withDefaults fills every zero field with its default. Negative values stay: where negative means
// something (AuthFailLimit, MediaTimeout) it is documented, elsewhere validate refuses it.
func (c Config) withDefaults() Config {
	c.SIP = cmp.Or(c.SIP, DefaultSIP)
	c.MaxConnections = cmp.Or(c.MaxConnections, DefaultMaxConnections)
	c.MaxConnectionsPerSource = cmp.Or(c.MaxConnectionsPerSource, DefaultMaxConnectionsPerSource)
	c.ConnIdleTimeout = cmp.Or(c.ConnIdleTimeout, DefaultConnIdleTimeout)
	c.MessageTimeout = cmp.Or(c.MessageTimeout, DefaultMessageTimeout)
	c.TLSHandshakeTimeout = cmp.Or(c.TLSHandshakeTimeout, DefaultTLSHandshakeTimeout)
	c.TLSReloadInterval = cmp.Or(c.TLSReloadInterval, DefaultTLSReloadInterval)
	c.Domain = cmp.Or(c.Domain, DefaultDomain)
	c.UserAgent = cmp.Or(c.UserAgent, DefaultUserAgent)
	if c.NodeID == "" {
		c.NodeID = hostname()
	}
	c.MaxContacts = cmp.Or(c.MaxContacts, DefaultMaxContacts)
	c.UDPReadBuffer = cmp.Or(c.UDPReadBuffer, DefaultUDPReadBuffer)
	c.SourceRate = cmp.Or(c.SourceRate, DefaultSourceRate)
	c.SourceBurst = cmp.Or(c.SourceBurst, DefaultSourceBurst)
	c.OverloadLatency = cmp.Or(c.OverloadLatency, DefaultOverloadLatency)
	c.ContactsFull = cmp.Or(c.ContactsFull, DefaultContactsFull)
	c.MinExpires = cmp.Or(c.MinExpires, DefaultMinExpires)
	c.MaxExpires = cmp.Or(c.MaxExpires, DefaultMaxExpires)
	c.DefaultExpires = cmp.Or(c.DefaultExpires, min(DefaultRegistrationExpires, c.MaxExpires))
	c.SubscriptionMinExpires = cmp.Or(c.SubscriptionMinExpires, DefaultSubscriptionMinExpires)
	c.SubscriptionMaxExpires = cmp.Or(c.SubscriptionMaxExpires, DefaultSubscriptionMaxExpires)
	c.MaxSubscriptions = cmp.Or(c.MaxSubscriptions, DefaultMaxSubscriptions)
	c.MaxSubscriptionsPerSource = cmp.Or(c.MaxSubscriptionsPerSource, DefaultMaxSubscriptionsPerSource)
	if len(c.DigestAlgorithms) == 0 {
		c.DigestAlgorithms = []string{DefaultDigestAlgorithm}
	}
	c.NonceTTL = cmp.Or(c.NonceTTL, DefaultNonceTTL)
	c.AuthFailLimit = cmp.Or(c.AuthFailLimit, DefaultAuthFailLimit)
	c.AuthFailWindow = cmp.Or(c.AuthFailWindow, DefaultAuthFailWindow)
	c.AuthBanTime = cmp.Or(c.AuthBanTime, DefaultAuthBanTime)
	c.MaxBodyBytes = cmp.Or(c.MaxBodyBytes, DefaultMaxBodyBytes)
	c.MaxURILength = cmp.Or(c.MaxURILength, DefaultMaxURILength)
	c.PurgeInterval = cmp.Or(c.PurgeInterval, DefaultPurgeInterval)
	c.HeartbeatInterval = cmp.Or(c.HeartbeatInterval, DefaultHeartbeatInterval)
	c.TrunkRefresh = cmp.Or(c.TrunkRefresh, DefaultTrunkRefresh)
	c.TrunkExpires = cmp.Or(c.TrunkExpires, DefaultTrunkExpires)
	c.TrunkRetryMin = cmp.Or(c.TrunkRetryMin, DefaultTrunkRetryMin)
	c.TrunkRetryMax = cmp.Or(c.TrunkRetryMax, max(DefaultTrunkRetryMax, c.TrunkRetryMin))
	c.RingTimeout = cmp.Or(c.RingTimeout, DefaultRingTimeout)
	c.AckTimeout = cmp.Or(c.AckTimeout, DefaultAckTimeout)
	c.DialplanTimeout = cmp.Or(c.DialplanTimeout, DefaultDialplanTimeout)
	c.PauseCode = cmp.Or(c.PauseCode, DefaultPauseCode)
	if c.DialplanLocation == nil {
		c.DialplanLocation = time.Local
	}
	if len(c.Codecs) == 0 {
		c.Codecs = DefaultCodecs()
	}
	c.MediaTimeout = cmp.Or(c.MediaTimeout, DefaultMediaTimeout)
	c.DataDir = absDir(c.DataDir)
	if c.RecordingsDir == "" {
		c.RecordingsDir = filepath.Join(c.DataDir, DefaultRecordingsDir)
	}
	c.RecordingsDir = absDir(c.RecordingsDir)
	c.Features = c.Features.withDefaults()
	return c
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

// What a REGISTER past MaxContacts gets (Config.ContactsFull).
const (
	ContactsReplaceOldest = "replace-oldest"
	ContactsRefuse        = "refuse"
)

// absDir makes a folder absolute (paths under it are stored, and read from other working
// directories: officepbx vm rm); "" stays "", and a folder Abs cannot resolve stays as it is.
func absDir(dir string) string {
	if dir == "" {
		return ""
	}
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}
