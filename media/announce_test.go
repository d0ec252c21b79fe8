package media

import (
	"fmt"
	"strings"
	"testing"
)

// TestWithAnnouncement: three frames of music, the two-frame announcement from its start, three
// frames of music going on where they stopped, the announcement again from its start.
func TestWithAnnouncement(t *testing.T) {
	music := &clip{data: frames('m', 10), loop: true}
	ann := &clip{data: frames('a', 2)}
	src := WithAnnouncement(music, ann, 3*framePeriod)
	var got strings.Builder
	frame := make([]byte, frameSamples)
	for range 12 {
		if !src.Frame(frame) {
			t.Fatal("the audio ended")
		}
		fmt.Fprintf(&got, "%c%d", frame[0], frame[1])
	}
	if want := "m0m1m2a0a1m3m4m5a0a1m6m7"; got.String() != want {
		t.Fatalf("frames %q, want %q", got.String(), want)
	}
}

// frames is n frames: in each, the first byte is letter and the others the frame's number.
func frames(letter byte, n int) []byte {
	data := make([]byte, n*frameSamples)
	for i := range n {
		data[i*frameSamples] = letter
		for j := 1; j < frameSamples; j++ {
			data[i*frameSamples+j] = byte(i)
		}
	}
	return data
}
