package audiotest

import (
	"math"
	"testing"
)

// TestGoertzel: a tone's energy is found at its frequency, at 8 and 16 kHz, and not elsewhere.
func TestGoertzel(t *testing.T) {
	for _, rate := range []float64{8000, 16000} {
		tone := make([]int16, int(rate/5))
		for i := range tone {
			tone[i] = int16(6000 * math.Sin(2*math.Pi*1400*float64(i)/rate))
		}
		if g := Goertzel(tone, rate, 1400); g < 0.9 {
			t.Errorf("%v Hz: 1400 Hz in a 1400 Hz tone = %.3f, want near 1", rate, g)
		}
		if g := Goertzel(tone, rate, 1000); g > 0.05 {
			t.Errorf("%v Hz: 1000 Hz in a 1400 Hz tone = %.3f, want near 0", rate, g)
		}
	}
	if g := Goertzel(make([]int16, 400), 8000, 1000); g != 0 {
		t.Errorf("silence: %.3f", g)
	}
	if g, s := Goertzel(Tone(700, 5000, 0, 800), Rate, 700), Share(Tone(700, 5000, 0, 800), 700); g != s {
		t.Errorf("Goertzel at Rate %.4f, Share %.4f: want the same", g, s)
	}
}
