package pbx_test

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/pbx"
)

// TestConfigValidate has one case per rule of Config.Validate: the field it names and what its
// reason says.
func TestConfigValidate(t *testing.T) {
	relay := func(lo, hi int) pbx.Config { return pbx.Config{SIP: "192.0.2.1:5060", RTPPortMin: lo, RTPPortMax: hi} }
	for _, tc := range []struct {
		name   string
		cfg    pbx.Config
		field  string // "" when the config is valid
		reason string // substring of the reason
	}{
		{"zero value", pbx.Config{}, "", ""},
		{"all set", pbx.Config{SIP: "127.0.0.1:0", Domain: "office.example", MaxContacts: 2, MinExpires: time.Minute,
			MaxExpires: time.Hour, DefaultExpires: 30 * time.Minute, DigestAlgorithms: []string{"SHA-256", "MD5"},
			RingTimeout: time.Hour, DialplanTimeout: time.Minute, MaxCalls: 10, CopyHeaders: []string{"P-Asserted-Identity"},
			AuthFailLimit: -1, MediaTimeout: -1, Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, "", ""},
		{"relay", relay(20000, 30000), "", ""},
		{"relay with its own address", pbx.Config{RTPPortMin: 20000, RTPPortMax: 20003, RTPAddress: "192.0.2.1"}, "", ""},
		{"relay odd start, two pairs", relay(20001, 20005), "", ""},
		{"relay on all addresses behind NAT", pbx.Config{RTPPortMin: 20000, RTPPortMax: 30000, ExternalIP: "203.0.113.7"}, "", ""},
		{"relay on 0.0.0.0 behind NAT", pbx.Config{RTPPortMin: 20000, RTPPortMax: 30000, RTPAddress: "0.0.0.0", ExternalIP: "203.0.113.7"}, "", ""},
		{"tls", pbx.Config{TLS: "0.0.0.0:5061", TLSCert: "c.pem", TLSKey: "k.pem", TLSReloadInterval: -1}, "", ""},

		{"sip without port", pbx.Config{SIP: "not-an-address"}, "SIP", "want host:port"},
		{"domain with a space", pbx.Config{Domain: "my office"}, "Domain", "want a host name"},
		{"user agent with a line break", pbx.Config{UserAgent: "pbx\r\nX-Evil: 1"}, "UserAgent", "control characters"},
		{"zero trusted prefix", pbx.Config{Trusted: []netip.Prefix{{}}}, "Trusted", "want a network"},
		{"unknown digest", pbx.Config{DigestAlgorithms: []string{"MD4"}}, "DigestAlgorithms", "want MD5 or SHA-256"},
		{"lower-case digest", pbx.Config{DigestAlgorithms: []string{"md5"}}, "DigestAlgorithms", "want MD5 or SHA-256"},
		{"digest twice", pbx.Config{DigestAlgorithms: []string{"MD5", "MD5"}}, "DigestAlgorithms", "named twice"},
		{"negative nonce ttl", pbx.Config{NonceTTL: -time.Second}, "NonceTTL", "must not be negative"},
		{"negative fail window", pbx.Config{AuthFailWindow: -time.Second}, "AuthFailWindow", "must not be negative"},
		{"negative ban time", pbx.Config{AuthBanTime: -time.Second}, "AuthBanTime", "must not be negative"},
		{"negative max contacts", pbx.Config{MaxContacts: -1}, "MaxContacts", "at least 1"},
		{"min expires under 1s", pbx.Config{MinExpires: time.Millisecond}, "MinExpires", "at least 1s"},
		{"max below min", pbx.Config{MinExpires: time.Hour, MaxExpires: time.Minute, DefaultExpires: time.Hour}, "MaxExpires", "less than MinExpires"},
		{"default expires above max", pbx.Config{MaxExpires: time.Hour, DefaultExpires: 2 * time.Hour}, "DefaultExpires", "between MinExpires"},
		{"default expires below min", pbx.Config{DefaultExpires: time.Second}, "DefaultExpires", "between MinExpires"},
		{"negative body size", pbx.Config{MaxBodyBytes: -1}, "MaxBodyBytes", "must not be negative"},
		{"negative URI length", pbx.Config{MaxURILength: -1}, "MaxURILength", "must not be negative"},
		{"negative purge interval", pbx.Config{PurgeInterval: -time.Second}, "PurgeInterval", "must not be negative"},
		{"negative ring timeout", pbx.Config{RingTimeout: -time.Second}, "RingTimeout", "want more than 0 and at most 1h"},
		{"ring timeout over an hour", pbx.Config{RingTimeout: 61 * time.Minute}, "RingTimeout", "at most 1h"},
		{"negative dialplan timeout", pbx.Config{DialplanTimeout: -time.Millisecond}, "DialplanTimeout", "want more than 0 and at most 1m"},
		{"dialplan timeout over a minute", pbx.Config{DialplanTimeout: 2 * time.Minute}, "DialplanTimeout", "at most 1m"},
		{"negative ack timeout", pbx.Config{AckTimeout: -time.Second}, "AckTimeout", "must not be negative"},
		{"negative max calls", pbx.Config{MaxCalls: -1}, "MaxCalls", "must not be negative"},
		{"copy header not a token", pbx.Config{CopyHeaders: []string{"X-A: b"}}, "CopyHeaders", "want a header name"},
		{"copy header empty", pbx.Config{CopyHeaders: []string{""}}, "CopyHeaders", "want a header name"},
		{"rtp address a name", pbx.Config{RTPAddress: "pbx.example"}, "RTPAddress", "want a specific IP"},
		{"rtp address unspecified", pbx.Config{RTPAddress: "0.0.0.0"}, "RTPAddress", "want a specific IP"},
		{"relay without an IP", pbx.Config{RTPPortMin: 20000, RTPPortMax: 30000}, "RTPAddress", "needs a specific IP"},
		{"external ip a name", pbx.Config{ExternalIP: "pbx.example"}, "ExternalIP", "want a specific IP"},
		{"external ip unspecified", pbx.Config{ExternalIP: "0.0.0.0"}, "ExternalIP", "want a specific IP"},
		{"tls without port", pbx.Config{TLS: "pbx", TLSCert: "c.pem", TLSKey: "k.pem"}, "TLS", "want host:port"},
		{"tls without certificate", pbx.Config{TLS: ":5061", TLSKey: "k.pem"}, "TLSCert", "needs a certificate"},
		{"tls without key", pbx.Config{TLS: ":5061", TLSCert: "c.pem"}, "TLSKey", "private key"},
		{"certificate without tls", pbx.Config{TLSCert: "c.pem", TLSKey: "k.pem"}, "TLS", "no TLS address"},
		{"negative handshake timeout", pbx.Config{TLSHandshakeTimeout: -time.Second}, "TLSHandshakeTimeout", "must not be negative"},
		{"rtp range privileged", relay(80, 2000), "RTPPortMin-RTPPortMax", "within 1024-65535"},
		{"rtp range beyond 65535", relay(60000, 70000), "RTPPortMin-RTPPortMax", "within 1024-65535"},
		{"rtp range one pair", relay(20000, 20002), "RTPPortMin-RTPPortMax", "two RTP/RTCP port pairs"},
		// From an odd start the first pair is at the next even port: 20001-20004 holds one pair.
		{"rtp range odd start, one pair", relay(20001, 20004), "RTPPortMin-RTPPortMax", "two RTP/RTCP port pairs"},
		{"rtp range reversed", relay(30000, 20000), "RTPPortMin-RTPPortMax", "within 1024-65535"},
		{"rtp max without min", relay(0, 30000), "RTPPortMin-RTPPortMax", "within 1024-65535"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				return
			}
			var ce *pbx.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a *pbx.ConfigError", err)
			}
			if ce.Field != tc.field || !strings.Contains(ce.Reason, tc.reason) {
				t.Fatalf("got %q (field %s), want field %s with a reason containing %q", err, ce.Field, tc.field, tc.reason)
			}
			if !strings.HasPrefix(err.Error(), ce.Field+" "+ce.Value+": ") {
				t.Fatalf("message %q does not name field and value", err)
			}
		})
	}
}

// TestConfigValidateReportsEveryProblem: one call names every bad field, not just the first.
func TestConfigValidateReportsEveryProblem(t *testing.T) {
	err := pbx.Config{RingTimeout: -1, MaxCalls: -1, DigestAlgorithms: []string{"MD4"}}.Validate()
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ce *pbx.ConfigError
		if errors.As(e, &ce) {
			fields = append(fields, ce.Field)
		}
	}
	if got := strings.Join(fields, ","); got != "DigestAlgorithms,RingTimeout,MaxCalls" {
		t.Fatalf("fields %s, want DigestAlgorithms,RingTimeout,MaxCalls (%v)", got, err)
	}
}

// TestNegativeRingTimeoutFailsNew: an embedder's negative ring timeout is a config error at New,
// not a PBX that answers every call 480 at once.
func TestNegativeRingTimeoutFailsNew(t *testing.T) {
	p, err := pbx.New(pbx.Config{SIP: "127.0.0.1:0", Database: "sqlite::memory:", RingTimeout: -30 * time.Second})
	var ce *pbx.ConfigError
	if err == nil || !errors.As(err, &ce) || ce.Field != "RingTimeout" {
		if p != nil {
			p.Shutdown(t.Context())
		}
		t.Fatalf("New with RingTimeout -30s: %v, want a RingTimeout config error", err)
	}
}

// TestConfigDefaults: the configuration in force names every default constant.
func TestConfigDefaults(t *testing.T) {
	tp := startPBX(t, pbx.Config{})
	c := tp.Config()
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"UserAgent", c.UserAgent, pbx.DefaultUserAgent},
		{"MaxContacts", c.MaxContacts, pbx.DefaultMaxContacts},
		{"MinExpires", c.MinExpires, pbx.DefaultMinExpires},
		{"MaxExpires", c.MaxExpires, pbx.DefaultMaxExpires},
		{"DefaultExpires", c.DefaultExpires, pbx.DefaultRegistrationExpires},
		{"DigestAlgorithms", fmt.Sprint(c.DigestAlgorithms), fmt.Sprint([]string{pbx.DefaultDigestAlgorithm})},
		{"NonceTTL", c.NonceTTL, pbx.DefaultNonceTTL},
		{"AuthFailLimit", c.AuthFailLimit, pbx.DefaultAuthFailLimit},
		{"AuthFailWindow", c.AuthFailWindow, pbx.DefaultAuthFailWindow},
		{"AuthBanTime", c.AuthBanTime, pbx.DefaultAuthBanTime},
		{"MaxBodyBytes", c.MaxBodyBytes, pbx.DefaultMaxBodyBytes},
		{"MaxURILength", c.MaxURILength, pbx.DefaultMaxURILength},
		{"PurgeInterval", c.PurgeInterval, pbx.DefaultPurgeInterval},
		{"RingTimeout", c.RingTimeout, pbx.DefaultRingTimeout},
		{"AckTimeout", c.AckTimeout, pbx.DefaultAckTimeout},
		{"DialplanTimeout", c.DialplanTimeout, pbx.DefaultDialplanTimeout},
		{"DialplanLocation", c.DialplanLocation, time.Local},
		{"Codecs", fmt.Sprint(c.Codecs), fmt.Sprint(pbx.DefaultCodecs())},
		{"MediaTimeout", c.MediaTimeout, pbx.DefaultMediaTimeout},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

// ExampleConfig_Validate shows what a command line reports before it starts anything.
func ExampleConfig_Validate() {
	err := pbx.Config{RingTimeout: -time.Second, RTPAddress: "192.0.2.1", RTPPortMin: 20000, RTPPortMax: 20001}.Validate()
	fmt.Println(err)
	// Output:
	// RingTimeout -1s: want more than 0 and at most 1h
	// RTPPortMin-RTPPortMax 20000-20001: want a range within 1024-65535 with room for two RTP/RTCP port pairs (one call), e.g. 20000-30000
}

// TestConfigDataDirAbsolute: a relative DataDir (and the recordings folder in it) is made
// absolute, so the paths stored under it name their files from any working directory.
func TestConfigDataDirAbsolute(t *testing.T) {
	rel := "reltest-data-" + fmt.Sprint(time.Now().UnixNano())
	abs, err := filepath.Abs(rel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(abs) })
	c := startPBX(t, pbx.Config{DataDir: rel}).Config()
	if c.DataDir != abs || c.RecordingsDir != filepath.Join(abs, pbx.DefaultRecordingsDir) {
		t.Fatalf("DataDir %q, RecordingsDir %q; want both absolute under %q", c.DataDir, c.RecordingsDir, abs)
	}
}
