package audiotest

import (
	"math"
	"testing"
)

func sine(freq float64, n int) []int16 {
	out := make([]int16, n)
	for i := range out {
		out[i] = int16(8000 * math.Sin(2*math.Pi*freq*float64(i)/8000))
	}
	return out
}

func TestGoertzelFindsTheTone(t *testing.T) {
	s := sine(440, 8000)
	on, off := Goertzel(s, 8000, 440), Goertzel(s, 8000, 1000)
	if on < 100*off || on < 1e6 {
		t.Fatalf("440 Hz sine: power at 440 Hz %.0f, at 1000 Hz %.0f", on, off)
	}
	if p := Goertzel(make([]int16, 800), 8000, 440); p != 0 {
		t.Fatalf("silence has power %f", p)
	}
}
