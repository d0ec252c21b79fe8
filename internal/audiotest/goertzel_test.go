package audiotest

import (
	"math"
	"testing"
)

func TestGoertzel(t *testing.T) {
	const rate, n = 8000, 1600
	samples := make([]int16, n)
	for i := range samples {
		samples[i] = int16(5000*math.Sin(2*math.Pi*1000*float64(i)/rate) + 2000*math.Sin(2*math.Pi*300*float64(i)/rate))
	}
	for _, tc := range []struct {
		freq     float64
		lo, high float64 // the amplitude, 2√power
	}{
		{1000, 4950, 5050},
		{300, 1950, 2050},
		{1500, 0, 20},
		{700, 0, 20},
	} {
		if got := 2 * math.Sqrt(Goertzel(samples, rate, tc.freq)); got < tc.lo || got > tc.high {
			t.Errorf("%v Hz: amplitude %.1f, want %v-%v", tc.freq, got, tc.lo, tc.high)
		}
	}
	if got := Goertzel(nil, rate, 1000); got != 0 {
		t.Errorf("no samples: %v", got)
	}
}
