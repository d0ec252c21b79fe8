package store_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a goroutine outlives the tests: a closed Store must leave no
// connection or pool goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
