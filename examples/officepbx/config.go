package main

import (
	"errors"
	"strings"

	"github.com/pbxkit/pbxkit/pbx"
)

// flagErrors turns the errors of pbx.Config.Validate into one usage error whose messages are
// pbx's, each with the Config field replaced by the flag that set it: pbx decides what is valid,
// the command line only says where the value came from.
func flagErrors(err error) error {
	var msgs []string
	for _, e := range unjoin(err) {
		var ce *pbx.ConfigError
		if errors.As(e, &ce) {
			if name, ok := flagFor(ce.Field); ok {
				msgs = append(msgs, name+" "+ce.Value+": "+ce.Reason)
				continue
			}
		}
		msgs = append(msgs, e.Error())
	}
	return usageError{strings.Join(msgs, "; ")}
}

// unjoin returns the errors that errors.Join put together, or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// flagFor names the flag that sets a pbx.Config field; fields without a flag keep pbx's name.
func flagFor(field string) (string, bool) {
	switch field {
	case "SIP":
		return "--sip", true
	case "TLS":
		return "--tls", true
	case "TLSCert":
		return "--tls-cert", true
	case "TLSKey":
		return "--tls-key", true
	case "ExternalIP":
		return "--external-ip", true
	case "Domain":
		return "--domain", true
	case "Trusted":
		return "--trust", true
	case "NodeID":
		return "--node-id", true
	case "DigestAlgorithms":
		return "--digest-algorithms", true
	case "AuthFailWindow":
		return "--auth-fail-window", true
	case "AuthBanTime":
		return "--auth-ban-time", true
	case "RingTimeout":
		return "--ring-timeout", true
	case "MaxCalls":
		return "--max-calls", true
	case "DialplanScript":
		return "--dialplan", true
	case "DialplanTimeout":
		return "--dialplan-timeout", true
	case "RTPPortMin-RTPPortMax":
		return "--rtp-ports", true
	case "RTPAddress":
		return "--rtp-ip", true
	case "MediaTimeout":
		return "--media-timeout", true
	case "Codecs":
		return "--codecs", true
	case "MaxConnections":
		return "--max-connections", true
	case "MaxConnectionsPerSource":
		return "--max-connections-per-source", true
	case "ConnIdleTimeout":
		return "--conn-idle-timeout", true
	case "MessageTimeout":
		return "--message-timeout", true
	case "SourceRate", "SourceBurst":
		return "--source-rate", true
	case "OverloadLatency":
		return "--overload-latency", true
	}
	return "", false
}
