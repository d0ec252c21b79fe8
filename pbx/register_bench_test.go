package pbx_test

import (
	"fmt"
	"testing"

	"github.com/pbxkit/pbxkit/pbx"
)

// BenchmarkRegister is one full registration per iteration over real UDP to an in-process PBX:
// REGISTER, 401, REGISTER with MD5 credentials, 200 (two transactions and a binding write on the
// in-memory SQLite store). The client's work (building, parsing, digest) is included.
func BenchmarkRegister(b *testing.B) {
	tp := startPBX(b, pbx.Config{})
	tp.addExt(b, "100", "pw100")
	c := newClient(b, tp.addr)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r := registerSpec("100", fmt.Sprintf("bench-%d", i), 1, "Contact: <sip:100@10.0.0.1>")
		if res := register(b, c, r, "100", "pw100", "MD5"); res.StatusCode != 200 {
			b.Fatalf("register: %d", res.StatusCode)
		}
	}
}
