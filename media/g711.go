package media

import "github.com/zaf/g711"

// G.711 by table (ITU-T G.711; RFC 3551 §4.5.14): the conference mixer, the applications' audio
// (Attach, Play) and the recorder decode or encode every sample 50 times a second, so both
// directions are array look-ups (PCMU and PCMA use them), built once from zaf/g711's reference
// functions (tests check every input against them).
//
// Decoding is a 256-entry table per law. Encoding needs only the bits the law keeps: µ-law reads
// a sample's top 14 bits (the encoder shifts right by 2 first), A-law its top 12 (it shifts by
// 4), so the tables have 16,384 and 4,096 entries (21 KiB in all, near the CPU) rather than 65,536.

// law is one G.711 variant's tables.
type law struct {
	dec   *[256]int16
	enc   []uint8 // indexed by uint16(sample) >> shift
	shift uint
}

// encode returns the G.711 byte of sample s.
func (l *law) encode(s int16) uint8 { return l.enc[uint16(s)>>l.shift] }

// decode returns the sample of G.711 byte b.
func (l *law) decode(b uint8) int16 { return l.dec[b] }

var (
	ulaw = buildLaw(g711.DecodeUlawFrame, g711.EncodeUlawFrame, 2)
	alaw = buildLaw(g711.DecodeAlawFrame, g711.EncodeAlawFrame, 4)
)

func buildLaw(dec func(uint8) int16, enc func(int16) uint8, shift uint) *law {
	l := &law{dec: new([256]int16), enc: make([]uint8, 1<<(16-shift)), shift: shift}
	for b := range 256 {
		l.dec[b] = dec(uint8(b))
	}
	for i := range l.enc {
		l.enc[i] = enc(int16(uint16(i) << shift))
	}
	return l
}

// g711Law returns the tables of G.711 payload type pt (0 PCMU, 8 PCMA), or nil.
func g711Law(pt uint8) *law {
	switch pt {
	case PCMU.PayloadType:
		return ulaw
	case PCMA.PayloadType:
		return alaw
	}
	return nil
}
