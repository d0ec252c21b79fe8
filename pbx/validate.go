package pbx

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
	"unicode"

	"github.com/pbxkit/pbxkit/internal/sipx"
)

// ConfigError is one Config field whose value New does not accept. Validate returns one per
// problem (joined with errors.Join); errors.As finds them, so that a command line can name its own
// flag instead of the field.
type ConfigError struct {
	// Field is the Config field, as spelled in Go; "RTPPortMin-RTPPortMax" for the port range.
	Field string
	// Value is the value as the message shows it: strings quoted, durations as time.Duration
	// prints them, the port range as LO-HI.
	Value string
	// Reason says what a valid value is.
	Reason string
}

func (e *ConfigError) Error() string { return e.Field + " " + e.Value + ": " + e.Reason }

// Validate reports whether New accepts c, and if not, every reason why (each a *ConfigError). It
// checks c with the defaults filled in, as New will use it; it binds no socket and opens no store
// or script, so a command line can call it before doing anything.
func (c Config) Validate() error { return c.withDefaults().validate() }

// validate checks a Config whose defaults are filled in.
func (c Config) validate() error {
	var errs []error
	for _, check := range []func() []error{
		c.validateListener, c.validateAuth, c.validateRegistrar, c.validateSubscriptions, c.validateCalls, c.validateMedia,
		c.validateFeatures, c.validateTrunks, c.validateTLS,
	} {
		errs = append(errs, check()...)
	}
	return errors.Join(errs...)
}

func invalid(field, value, reason string) error {
	return &ConfigError{Field: field, Value: value, Reason: reason}
}

func (c Config) validateListener() []error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.SIP); err != nil {
		errs = append(errs, invalid("SIP", fmt.Sprintf("%q", c.SIP), "want host:port, e.g. "+DefaultSIP))
	}
	// The domain is the digest realm and the host of the PBX's URIs: a character that ends a
	// quoted string, a URI or a header parameter would break every challenge.
	if strings.ContainsAny(c.Domain, " \t\r\n\"<>@;:") {
		errs = append(errs, invalid("Domain", fmt.Sprintf("%q", c.Domain), "want a host name, e.g. office.example.com"))
	}
	// A line break would end the Server header and let the rest pose as headers of its own.
	if strings.ContainsFunc(c.UserAgent, unicode.IsControl) {
		errs = append(errs, invalid("UserAgent", fmt.Sprintf("%q", c.UserAgent), "must not contain control characters"))
	}
	for _, p := range c.Trusted {
		if !p.IsValid() {
			errs = append(errs, invalid("Trusted", p.String(), "want a network such as 10.0.0.0/8"))
		}
	}
	return errs
}

func (c Config) validateAuth() []error {
	var errs []error
	seen := map[string]bool{}
	for _, a := range c.DigestAlgorithms {
		switch {
		case a != DigestMD5 && a != DigestSHA256:
			errs = append(errs, invalid("DigestAlgorithms", fmt.Sprintf("%q", a), "want "+DigestMD5+" or "+DigestSHA256))
		case seen[a]:
			errs = append(errs, invalid("DigestAlgorithms", fmt.Sprintf("%q", a), "named twice"))
		}
		seen[a] = true
	}
	errs = appendNegative(errs, "NonceTTL", c.NonceTTL)
	errs = appendNegative(errs, "AuthFailWindow", c.AuthFailWindow)
	errs = appendNegative(errs, "AuthBanTime", c.AuthBanTime)
	return errs
}

func (c Config) validateRegistrar() []error {
	var errs []error
	if c.ContactsFull != ContactsReplaceOldest && c.ContactsFull != ContactsRefuse {
		errs = append(errs, invalid("ContactsFull", c.ContactsFull, "want "+ContactsReplaceOldest+" or "+ContactsRefuse))
	}
	if c.SourceRate > 0 && c.SourceBurst < 1 {
		errs = append(errs, invalid("SourceBurst", fmt.Sprint(c.SourceBurst), "must be at least 1"))
	}
	if c.UDPReadBuffer < 0 {
		errs = append(errs, invalid("UDPReadBuffer", fmt.Sprint(c.UDPReadBuffer), "must not be negative"))
	}
	if c.MaxContacts < 1 {
		errs = append(errs, invalid("MaxContacts", fmt.Sprint(c.MaxContacts), "must be at least 1"))
	}
	if c.MinExpires < time.Second {
		errs = append(errs, invalid("MinExpires", c.MinExpires.String(), "must be at least 1s"))
	}
	if c.MaxExpires < c.MinExpires {
		errs = append(errs, invalid("MaxExpires", c.MaxExpires.String(), "must not be less than MinExpires ("+c.MinExpires.String()+")"))
	}
	if c.DefaultExpires < c.MinExpires || c.DefaultExpires > c.MaxExpires {
		errs = append(errs, invalid("DefaultExpires", c.DefaultExpires.String(),
			fmt.Sprintf("must lie between MinExpires (%v) and MaxExpires (%v)", c.MinExpires, c.MaxExpires)))
	}
	if c.MaxBodyBytes < 0 {
		errs = append(errs, invalid("MaxBodyBytes", fmt.Sprint(c.MaxBodyBytes), "must not be negative"))
	}
	if c.MaxURILength < 0 {
		errs = append(errs, invalid("MaxURILength", fmt.Sprint(c.MaxURILength), "must not be negative"))
	}
	// time.NewTicker panics on a negative interval.
	errs = appendNegative(errs, "HeartbeatInterval", c.HeartbeatInterval)
	return appendNegative(errs, "PurgeInterval", c.PurgeInterval)
}

func (c Config) validateTrunks() []error {
	var errs []error
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"TrunkRefresh", c.TrunkRefresh}, {"TrunkExpires", c.TrunkExpires}, {"TrunkRetryMin", c.TrunkRetryMin}} {
		errs = appendNegative(errs, f.name, f.d)
	}
	if c.TrunkRetryMax < c.TrunkRetryMin {
		errs = append(errs, invalid("TrunkRetryMax", c.TrunkRetryMax.String(), "must not be less than TrunkRetryMin ("+c.TrunkRetryMin.String()+")"))
	}
	return errs
}

func (c Config) validateSubscriptions() []error {
	var errs []error
	if c.SubscriptionMinExpires < time.Second {
		errs = append(errs, invalid("SubscriptionMinExpires", c.SubscriptionMinExpires.String(), "must be at least 1s"))
	}
	if c.SubscriptionMaxExpires < c.SubscriptionMinExpires {
		errs = append(errs, invalid("SubscriptionMaxExpires", c.SubscriptionMaxExpires.String(),
			"must not be less than SubscriptionMinExpires ("+c.SubscriptionMinExpires.String()+")"))
	}
	return errs
}

func (c Config) validateCalls() []error {
	var errs []error
	// A negative ring timeout would fire at once: every call would fail with 480 before ringing.
	errs = appendOutOfRange(errs, "RingTimeout", c.RingTimeout, MaxRingTimeout)
	errs = appendOutOfRange(errs, "DialplanTimeout", c.DialplanTimeout, MaxDialplanTimeout)
	errs = appendNegative(errs, "AckTimeout", c.AckTimeout)
	if c.MaxCalls < 0 {
		errs = append(errs, invalid("MaxCalls", fmt.Sprint(c.MaxCalls), "must not be negative (0: no limit)"))
	}
	// A header name that is not a token could not be matched in any request; one with a line
	// break in it would be worse.
	for _, h := range c.CopyHeaders {
		if !sipx.IsToken(h) {
			errs = append(errs, invalid("CopyHeaders", fmt.Sprintf("%q", h), "want a header name, e.g. P-Asserted-Identity"))
		}
	}
	return errs
}

func (c Config) validateMedia() []error {
	var errs []error
	// The relay names its address in SDP: a specific one, unless ExternalIP is named instead.
	if c.RTPAddress != "" && !isSpecificIP(c.RTPAddress) && (c.ExternalIP == "" || net.ParseIP(c.RTPAddress) == nil) {
		errs = append(errs, invalid("RTPAddress", fmt.Sprintf("%q", c.RTPAddress), "want a specific IP address, not a name or 0.0.0.0 (0.0.0.0 only with ExternalIP)"))
	}
	if c.RTPPortMin == 0 && c.RTPPortMax == 0 {
		return errs // no relay
	}
	if c.RTPAddress == "" && c.ExternalIP == "" {
		if host, _, _ := net.SplitHostPort(c.SIP); !isSpecificIP(host) {
			errs = append(errs, invalid("RTPAddress", `""`,
				fmt.Sprintf("the media relay needs a specific IP to name in SDP, and the SIP address %q names none", c.SIP)))
		}
	}
	if !rtpRangeOK(c.RTPPortMin, c.RTPPortMax) {
		errs = append(errs, invalid("RTPPortMin-RTPPortMax", fmt.Sprintf("%d-%d", c.RTPPortMin, c.RTPPortMax),
			fmt.Sprintf("want a range within %d-%d with room for two RTP/RTCP port pairs (one call), e.g. 20000-30000", MinRTPPort, MaxRTPPort)))
	}
	return errs
}

// rtpRangeOK: the range holds at least two RTP/RTCP pairs, counted as package media allocates
// them, from the first even port up (RFC 3550 §11: RTP on an even port, RTCP on the next).
func rtpRangeOK(lo, hi int) bool {
	first := lo + lo%2
	return lo >= MinRTPPort && hi <= MaxRTPPort && hi >= first+3
}

// mediaIP is the address the media relay binds: RTPAddress, or else the host of SIP. validate has
// checked that it is a specific IP, or that ExternalIP is named in SDP in its place.
func (c Config) mediaIP() net.IP {
	host := c.RTPAddress
	if host == "" {
		host, _, _ = net.SplitHostPort(c.SIP)
	}
	return net.ParseIP(host)
}

func isSpecificIP(s string) bool {
	ip := net.ParseIP(s)
	return ip != nil && !ip.IsUnspecified()
}

// appendNegative adds an error when d is negative: after defaults, 0 is never left.
func appendNegative(errs []error, field string, d time.Duration) []error {
	if d < 0 {
		errs = append(errs, invalid(field, d.String(), "must not be negative"))
	}
	return errs
}

// appendOutOfRange adds an error unless 0 < d <= max.
func appendOutOfRange(errs []error, field string, d, max time.Duration) []error {
	if d <= 0 || d > max {
		errs = append(errs, invalid(field, d.String(), "want more than 0 and at most "+shortDuration(max)))
	}
	return errs
}

// shortDuration prints whole hours and minutes as "1h" and "1m" rather than "1h0m0s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if t, ok := strings.CutSuffix(s, "m0s"); ok {
		s = t + "m"
	}
	if t, ok := strings.CutSuffix(s, "h0m"); ok {
		s = t + "h"
	}
	return s
}

func (c Config) validateTLS() []error {
	var errs []error
	if c.ExternalIP != "" && !isSpecificIP(c.ExternalIP) {
		errs = append(errs, invalid("ExternalIP", fmt.Sprintf("%q", c.ExternalIP), "want a specific IP address, e.g. 203.0.113.7"))
	}
	errs = appendNegative(errs, "TLSHandshakeTimeout", c.TLSHandshakeTimeout)
	if c.TLS == "" {
		if c.TLSCert != "" || c.TLSKey != "" {
			errs = append(errs, invalid("TLS", `""`, "TLSCert and TLSKey are set but no TLS address to serve them on, e.g. 0.0.0.0:5061"))
		}
		return errs
	}
	if _, _, err := net.SplitHostPort(c.TLS); err != nil {
		errs = append(errs, invalid("TLS", fmt.Sprintf("%q", c.TLS), "want host:port, e.g. 0.0.0.0:5061"))
	}
	if c.TLSCert == "" {
		errs = append(errs, invalid("TLSCert", `""`, "TLS needs a certificate file (PEM)"))
	}
	if c.TLSKey == "" {
		errs = append(errs, invalid("TLSKey", `""`, "TLS needs the certificate's private key file (PEM)"))
	}
	return errs
}
