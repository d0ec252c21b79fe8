package audiotest

import "math"

// Goertzel returns the share of the energy of samples (taken at sampleRate) that lies at freq,
// between 0 and 1: near 1 for a pure tone at freq, near 0 for a tone elsewhere or silence. It is
// the Goertzel algorithm over the whole block (freq need not fall on an FFT bin), normalised by
// the block's energy so that loudness does not matter; Share is the same at Rate.
func Goertzel(samples []int16, sampleRate, freq float64) float64 {
	n := len(samples)
	if n == 0 || sampleRate <= 0 {
		return 0
	}
	coeff := 2 * math.Cos(2*math.Pi*freq/sampleRate)
	var s1, s2, energy float64
	for _, v := range samples {
		x := float64(v)
		energy += x * x
		s0 := x + coeff*s1 - s2
		s2, s1 = s1, s0
	}
	if energy == 0 {
		return 0
	}
	power := s1*s1 + s2*s2 - coeff*s1*s2 // |X(freq)|²
	return math.Min(1, 2*power/(float64(n)*energy))
}
