package testenv

import (
	"testing"

	"github.com/pbxkit/pbxkit/internal/tcpproxy"
)

// NewProxy forwards 127.0.0.1:port (its Addr) to target until the test ends; SetDown cuts every
// connection, as a failed database host would.
func NewProxy(t testing.TB, target string) *tcpproxy.Proxy {
	p, err := tcpproxy.New("127.0.0.1:0", target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}
