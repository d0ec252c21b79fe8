package b2bua

import (
	"sync"

	"github.com/emiago/sipgo/sip"
)

// contactCache shares the PBX's Contact headers between dialogs: a PBX has a few addresses and
// transports, and a held call would otherwise keep two headers of its own (about 300 bytes). The
// headers it returns are never modified: messages carry them as they are, and a clone of a
// message clones its headers.
type contactCache struct {
	mu sync.Mutex
	m  map[contactKey]*sip.ContactHeader
}

type contactKey struct {
	host      string
	port      int
	transport string
	secure    bool
}

// maxContacts bounds the cache: the host comes from the Request-URI a caller chose when the PBX
// has no host configured, so a caller naming many hosts gets headers of its own past it.
const maxContacts = 64

// get returns the PBX's Contact at host:port over transport (pbxContact), shared.
func (cc *contactCache) get(host string, port int, transport string, secure bool) *sip.ContactHeader {
	k := contactKey{host: host, port: port, transport: transport, secure: secure}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if h, ok := cc.m[k]; ok {
		return h
	}
	h := pbxContact(host, port, transport, secure)
	if len(cc.m) < maxContacts {
		if cc.m == nil {
			cc.m = map[contactKey]*sip.ContactHeader{}
		}
		k.host = string([]byte(host)) // not a slice of the message that named it
		cc.m[k] = h
	}
	return h
}
