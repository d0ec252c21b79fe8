package media

import "math"

// The tones a room plays to everyone when someone joins (rising: 600 then 1000 Hz) or leaves
// (falling), 80 ms a note at about -14 dBFS, faded in and out over 5 ms so they do not click.
// Computed once; the mixer adds them to the frame's sum.
var (
	joinTone  = notes(600, 1000)
	leaveTone = notes(1000, 600)
)

func notes(freqs ...float64) []int16 {
	const (
		note = 640 // 80 ms
		fade = 40  // 5 ms
		amp  = 0.2 * math.MaxInt16
	)
	out := make([]int16, 0, note*len(freqs))
	for _, f := range freqs {
		for i := range note {
			g := min(1, float64(min(i, note-1-i))/fade)
			out = append(out, int16(amp*g*math.Sin(2*math.Pi*f*float64(i)/sampleRate)))
		}
	}
	return out
}
