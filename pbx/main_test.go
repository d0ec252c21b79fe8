package pbx_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: every PBX a test starts must
// stop everything it started.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
