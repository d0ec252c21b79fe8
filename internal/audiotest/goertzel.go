package audiotest

import "math"

// Goertzel returns the power of frequency freq (Hz) in samples taken at sampleRate, normalised
// by the number of samples squared so that figures of blocks of different length compare: a
// full-scale sine at freq gives about 0.25 * 32768², a signal without it close to 0. It is the
// Goertzel algorithm: one bin of a DFT, computed in one pass.
func Goertzel(samples []int16, sampleRate, freq float64) float64 {
	if len(samples) == 0 {
		return 0
	}
	w := 2 * math.Pi * freq / sampleRate
	coeff := 2 * math.Cos(w)
	var s1, s2 float64
	for _, x := range samples {
		s0 := float64(x) + coeff*s1 - s2
		s2, s1 = s1, s0
	}
	power := s1*s1 + s2*s2 - coeff*s1*s2
	n := float64(len(samples))
	return power / (n * n)
}
