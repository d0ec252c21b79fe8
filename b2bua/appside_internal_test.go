package b2bua

import (
	"slices"
	"testing"
)

// The recorder keeps what arrives across its chunks, in order, up to its limit.
func TestRecorderChunks(t *testing.T) {
	limit := 2*chunkSamples + 1000
	r := newRecorder(limit)
	var want []int16
	frame := make([]int16, 160)
	for i := 0; !r.ended; i++ {
		for j := range frame {
			frame[j] = int16(i*160 + j)
		}
		want = append(want, frame...)
		r.add(frame)
	}
	got := r.samples()
	if len(got) != limit || !slices.Equal(got, want[:limit]) {
		t.Fatalf("recorded %d samples (equal to what was sent: %v), want the first %d", len(got), slices.Equal(got, want[:len(got)]), limit)
	}
}

// BenchmarkRecordReceive is the relay goroutine's cost of a caller's frame while the PBX records
// a long message (callApp.Receive with a recorder of MaxRecord).
func BenchmarkRecordReceive(b *testing.B) {
	a := newCallApp()
	frame := make([]int16, 160)
	for i := range frame {
		frame[i] = int16(i * 100)
	}
	b.ReportAllocs()
	for b.Loop() {
		a.record(newRecorder(int(MaxRecord.Seconds() * 8000)))
		for range 30 * 50 { // 30 s of audio
			a.Receive(frame)
		}
		a.stopRecording()
	}
}
