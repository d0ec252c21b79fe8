package admin_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: event streams included.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
