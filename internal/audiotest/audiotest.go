// Package audiotest measures audio in tests: how much of a signal's energy lies at one
// frequency (the Goertzel algorithm), and sine tones to send.
package audiotest

import "math"

// Rate is the sample rate of telephone audio (G.711).
const Rate = 8000

// Share returns the fraction of the energy of samples (at Rate) that lies at freq, between 0
// and 1: near 1 for a pure tone at freq, near 0 for a tone elsewhere or for silence. It runs the
// Goertzel algorithm over the whole block; freq need not fall on an FFT bin.
func Share(samples []int16, freq float64) float64 {
	n := len(samples)
	if n == 0 {
		return 0
	}
	coeff := 2 * math.Cos(2*math.Pi*freq/Rate)
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

// Level returns the mean absolute amplitude of samples.
func Level(samples []int16) float64 {
	if len(samples) == 0 {
		return 0
	}
	var sum float64
	for _, v := range samples {
		sum += math.Abs(float64(v))
	}
	return sum / float64(len(samples))
}

// Tone returns n samples of a sine at freq, amplitude amp, starting at sample offset (so
// consecutive blocks join without a click).
func Tone(freq, amp float64, offset, n int) []int16 {
	out := make([]int16, n)
	for i := range out {
		out[i] = int16(amp * math.Sin(2*math.Pi*freq*float64(offset+i)/Rate))
	}
	return out
}
