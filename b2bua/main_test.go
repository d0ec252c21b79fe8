package b2bua_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test's server checks its own goroutines when it stops; this catches anything else.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
