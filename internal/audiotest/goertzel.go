package audiotest

import "math"

// Goertzel returns the amplitude of the freq component of samples taken at sampleRate: about A
// for a sine of amplitude A at freq (exactly when freq falls on a bin, a multiple of
// sampleRate/len(samples)), about 0 for other frequencies far enough away (the bins are
// sampleRate/len(samples) wide: 5 Hz for 1600 samples at 8 kHz). The Goertzel algorithm
// computes one term of the discrete Fourier transform; the amplitude is 2|X(freq)|/N.
func Goertzel(samples []int16, sampleRate, freq float64) float64 {
	if len(samples) == 0 {
		return 0
	}
	coeff := 2 * math.Cos(2*math.Pi*freq/sampleRate)
	var s1, s2 float64
	for _, v := range samples {
		s0 := float64(v) + coeff*s1 - s2
		s2, s1 = s1, s0
	}
	power := s1*s1 + s2*s2 - coeff*s1*s2 // |X(freq)|^2
	return 2 * math.Sqrt(max(power, 0)) / float64(len(samples))
}
