package b2bua

import (
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/internal/sipx"
)

// reservedHeaders make up the dialog or the message: the engine writes them itself.
var reservedHeaders = map[string]bool{
	"via": true, "v": true, "from": true, "f": true, "to": true, "t": true, "call-id": true, "i": true,
	"cseq": true, "contact": true, "m": true, "max-forwards": true, "content-length": true, "l": true,
	"content-type": true, "c": true, "route": true, "record-route": true,
}

// NewHeader checks that name is a token (RFC 3261 §25.1) that names no header the engine writes
// itself, and that value holds no line break, and returns the header.
func NewHeader(name, value string) (sip.Header, error) {
	if !sipx.IsToken(name) {
		return nil, fmt.Errorf("b2bua: %q is not a valid header name", name)
	}
	if reservedHeaders[strings.ToLower(name)] {
		return nil, fmt.Errorf("b2bua: header %s is written by the PBX and cannot be set", name)
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		return nil, fmt.Errorf("b2bua: the value of header %s contains a line break", name)
	}
	return sip.NewHeader(name, value), nil
}
