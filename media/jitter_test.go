package media

import (
	"testing"
)

// frameOf is a 160-byte µ-law payload every sample of which decodes to the value of code c.
func frameOf(c byte) []byte {
	b := make([]byte, frameSamples)
	for i := range b {
		b[i] = c
	}
	return b
}

// takeN reads n frames and returns, for each, the value of its first sample (0: silence) and
// whether the frame was received.
func takeN(j *jitter, n int) (vals []int16, got []bool) {
	var f [frameSamples]int16
	for range n {
		g := j.take(&f)
		for _, v := range f[1:] {
			if v != f[0] {
				panic("a frame mixes two packets")
			}
		}
		vals, got = append(vals, f[0]), append(got, g)
	}
	return vals, got
}

func TestJitterBuffer(t *testing.T) {
	a, b, c, d := frameOf(0x10), frameOf(0x20), frameOf(0x30), frameOf(0x40)
	va, vb, vc, vd := ulaw.dec[0x10], ulaw.dec[0x20], ulaw.dec[0x30], ulaw.dec[0x40]
	for _, tc := range []struct {
		name string
		do   func(j *jitter)
		want []int16
	}{
		{"first packet lands 40 ms ahead", func(j *jitter) {
			j.put(ulaw, 1000, 1, a)
		}, []int16{0, 0, va, 0}},
		{"reordered packets play in order", func(j *jitter) {
			j.put(ulaw, 1000, 1, a)
			j.put(ulaw, 1320, 1, c)
			j.put(ulaw, 1160, 1, b)
		}, []int16{0, 0, va, vb, vc, 0}},
		{"a lost packet is silence", func(j *jitter) {
			j.put(ulaw, 1000, 1, a)
			j.put(ulaw, 1320, 1, c)
		}, []int16{0, 0, va, 0, vc}},
		{"a new SSRC starts again", func(j *jitter) {
			j.put(ulaw, 1000, 1, a)
			j.put(ulaw, 90000, 2, b) // would be far beyond the ring; lands 40 ms ahead instead (over a)
		}, []int16{0, 0, vb, 0}},
		{"a jump beyond the ring starts again", func(j *jitter) {
			j.put(ulaw, 1000, 1, a)
			j.put(ulaw, 1000+jitterSamples, 1, b)
		}, []int16{0, 0, vb}},
		{"without timestamps, one after the other", func(j *jitter) {
			j.putNext(ulaw, a)
			j.putNext(ulaw, b)
			j.putNext(ulaw, c)
		}, []int16{0, 0, va, vb, vc, 0}},
		{"two 10 ms packets make a frame", func(j *jitter) {
			j.put(ulaw, 1000, 1, a[:80])
			j.put(ulaw, 1080, 1, a[:80])
		}, []int16{0, 0, va}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var j jitter
			tc.do(&j)
			got, _ := takeN(&j, len(tc.want))
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("frames %v, want %v", got, tc.want)
				}
			}
		})
	}

	t.Run("late packets are dropped, then the stream starts again", func(t *testing.T) {
		var j jitter
		j.put(ulaw, 1000, 1, a)
		takeN(&j, 3) // 0, 0, a: the reader is past timestamp 1160 now
		for i := range maxLate {
			j.put(ulaw, 1000+uint32(i)*frameSamples-frameSamples, 1, b) // all behind the reader
			if v, got := takeN(&j, 1); got[0] || v[0] != 0 {
				t.Fatalf("late packet %d played", i)
			}
		}
		j.put(ulaw, 500, 1, c) // one more: the stream starts again with it, 40 ms ahead
		j.put(ulaw, 660, 1, d)
		if v, _ := takeN(&j, 4); v[2] != vc || v[3] != vd {
			t.Fatalf("after resynchronising: %v", v)
		}
	})

	t.Run("a paused stream without timestamps starts again", func(t *testing.T) {
		var j jitter
		j.putNext(ulaw, a)
		takeN(&j, 6) // played, then 60 ms of nothing
		j.putNext(ulaw, b)
		if v, got := takeN(&j, 3); v[2] != vb || !got[2] || got[0] {
			t.Fatalf("after the pause: %v %v", v, got)
		}
	})

	t.Run("a packet half played keeps its tail", func(t *testing.T) {
		var j jitter
		j.put(ulaw, 1000, 1, a)
		takeN(&j, 2)           // the reader is at timestamp 1000 now
		j.put(ulaw, 920, 1, b) // 80 samples already played, 80 to come
		var f [frameSamples]int16
		j.take(&f)
		if f[0] != vb || f[79] != vb || f[80] != va {
			t.Fatalf("the tail of a late packet: %d %d %d", f[0], f[79], f[80])
		}
	})
}
