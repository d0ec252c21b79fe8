package media

import (
	"fmt"
	"testing"
)

// The conference mixer's CPU per participant per 20 ms frame (docs/benchmarks.md):
//
//	go test -run XXX -bench 'Mix' -count 3 ./media
//
// One iteration is one frame of a room of N participants, half PCMU and half PCMA: each
// participant's RTP packet parsed and decoded into its jitter buffer (ReceiveRTP), the frame
// taken from every buffer and summed, each participant's mix-minus saturated and encoded, and
// made an RTP packet (RTPStream) handed to a write that does nothing: all the room's work but the
// system calls. ns/participant is ns/op divided by N. BenchmarkMix has everyone heard (a phone
// sending silence costs the same as one talking); BenchmarkMixMuted all but one muted, as in a
// lecture (the muted share one encoding of the whole mix per law).
func BenchmarkMix(b *testing.B) {
	for _, n := range []int{3, 10, 20} {
		b.Run(fmt.Sprintf("participants=%d", n), func(b *testing.B) { benchMix(b, n, false) })
	}
}

func BenchmarkMixMuted(b *testing.B) {
	for _, n := range []int{3, 10, 20} {
		b.Run(fmt.Sprintf("participants=%d", n), func(b *testing.B) { benchMix(b, n, true) })
	}
}

// benchMix mixes frames of a room of n participants, all but the first muted if muted.
func benchMix(b *testing.B, n int, muted bool) {
	r, ps := benchRoom(b, n)
	pkts := benchPackets(n)
	for _, p := range ps[1:] {
		p.SetMuted(muted)
	}
	var ts uint32
	b.ReportAllocs()
	for b.Loop() {
		feed(ps, pkts, ts)
		ts += frameSamples
		r.mixFrame()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/participant")
}

// BenchmarkMixPulled is BenchmarkMix for participants whose audio is pulled, as calls' are:
// decoded PCM in (Receive), the mix-minus queued as PCM and taken (Send). Decoding and encoding
// are the call's media attachment's (BenchmarkAppPath), not in this figure.
func BenchmarkMixPulled(b *testing.B) {
	for _, n := range []int{3, 10, 20} {
		b.Run(fmt.Sprintf("participants=%d", n), func(b *testing.B) {
			r := manualRoom(b, RoomConfig{NoTones: true})
			var ps []*Participant
			for range n {
				p, err := r.Join(ParticipantConfig{Codec: PCMU})
				if err != nil {
					b.Fatal(err)
				}
				ps = append(ps, p)
			}
			pcm, out := make([]int16, frameSamples), make([]int16, frameSamples)
			for k := range pcm {
				pcm[k] = int16(k * 40)
			}
			b.ReportAllocs()
			for b.Loop() {
				for _, p := range ps {
					p.Receive(pcm)
				}
				r.mixFrame()
				for _, p := range ps {
					p.Send(out)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/participant")
		})
	}
}
