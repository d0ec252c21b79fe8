package media

import (
	"math"
	"testing"

	"github.com/zaf/g711"
)

// The tables give what the reference functions give, for every input.
func TestG711Tables(t *testing.T) {
	for s := math.MinInt16; s <= math.MaxInt16; s++ {
		if got, want := ulaw.encode(int16(s)), g711.EncodeUlawFrame(int16(s)); got != want {
			t.Fatalf("µ-law of %d: %#x, want %#x", s, got, want)
		}
		if got, want := alaw.encode(int16(s)), g711.EncodeAlawFrame(int16(s)); got != want {
			t.Fatalf("A-law of %d: %#x, want %#x", s, got, want)
		}
	}
	for b := range 256 {
		if got, want := ulaw.dec[b], g711.DecodeUlawFrame(uint8(b)); got != want {
			t.Fatalf("µ-law %#x decodes to %d, want %d", b, got, want)
		}
		if got, want := alaw.dec[b], g711.DecodeAlawFrame(uint8(b)); got != want {
			t.Fatalf("A-law %#x decodes to %d, want %d", b, got, want)
		}
	}
	if g711Law(PCMU.PayloadType) != ulaw || g711Law(PCMA.PayloadType) != alaw || g711Law(9) != nil || g711Law(101) != nil {
		t.Fatal("g711Law picks the wrong table")
	}
}
