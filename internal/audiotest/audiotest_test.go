package audiotest

import "testing"

func TestShare(t *testing.T) {
	tone := Tone(1000, 8000, 0, 1600)
	if s := Share(tone, 1000); s < 0.9 {
		t.Errorf("share of 1000 Hz in a 1000 Hz tone = %.3f, want near 1", s)
	}
	if s := Share(tone, 425); s > 0.05 {
		t.Errorf("share of 425 Hz in a 1000 Hz tone = %.3f, want near 0", s)
	}
	if s := Share(make([]int16, 800), 1000); s != 0 {
		t.Errorf("share in silence = %.3f, want 0", s)
	}
	mixed := Tone(425, 4000, 0, 1600)
	for i, v := range Tone(1000, 4000, 0, 1600) {
		mixed[i] += v
	}
	if a, b := Share(mixed, 425), Share(mixed, 1000); a < 0.4 || b < 0.4 {
		t.Errorf("two equal tones: shares %.3f and %.3f, want about half each", a, b)
	}
}
