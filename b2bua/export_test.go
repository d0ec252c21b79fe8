package b2bua

import (
	"testing"
	"time"
)

// SetArrivalWait makes the engine's requests wait up to d for the requests of their call that
// arrived before them, until the test (and its servers, started after this call) ends. A long
// wait makes a request that holds its call's later ones visible: they are not answered.
func SetArrivalWait(t testing.TB, d time.Duration) {
	old := arrivalWait
	arrivalWait = d
	t.Cleanup(func() { arrivalWait = old })
}

// SetPINLimit makes n wrong conference PINs in a row lock a room (or a source) out.
func SetPINLimit(e *Engine, n int) { e.pins.SetLimit(n) }
