package media

import (
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// The cost of recording (docs/benchmarks.md):
//
//	go test -run XXX -bench 'RelayPath|Record' -benchmem -count 3 ./media
//
// BenchmarkRelayPathRecording is BenchmarkRelayPath with the call recorded: the relay's work per
// packet plus the tap (a copy into the recording's ring). The ring is emptied every 64 packets,
// as the writer does every 100 ms (the writer itself does not run), so no packet is dropped for
// a full ring. BenchmarkRecordWriter
// is the writer's work per packet, on its own goroutine: decoding a 20 ms G.711 frame, placing it
// and writing it to the WAV file (one write per 64 packets).

func BenchmarkRelayPathRecording(b *testing.B) {
	s := scratchSession(b, 41000, "m=audio 9 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n")
	f, err := os.Create(filepath.Join(b.TempDir(), "bench.wav"))
	if err != nil {
		b.Fatal(err)
	}
	// The recorder without its writer goroutine: the benchmark empties the ring itself.
	rec := newRecorder(f, f.Name(), time.Now(), slog.New(slog.DiscardHandler))
	s.rec.Store(rec)
	defer func() {
		s.rec.Store(nil)
		_ = rec.close(nil)
	}()
	src := netip.MustParseAddrPort("127.0.0.1:9")
	pkt, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 1}, Payload: make([]byte, 160)}).Marshal()
	var h rtp.Header
	var keys []keyPress
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		pkt[2], pkt[3] = byte(i>>8), byte(i)
		keys = s.fromRTPPort(s.a, pkt, src, &h, time.Now(), keys[:0])
		if i%64 == 63 {
			rec.mu.Lock()
			rec.tail = rec.head // what the writer took
			rec.mu.Unlock()
		}
	}
	b.StopTimer()
	if d := rec.dropped.Load(); d > 0 {
		b.Fatalf("%d packets dropped", d)
	}
}

func BenchmarkRecordWriter(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "bench.wav"))
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	r := newRecorder(f, f.Name(), start, slog.New(slog.DiscardHandler))
	payload := make([]byte, 160)
	for i := range payload {
		payload[i] = byte(i)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		at := start.Add(time.Duration(i/2+1) * framePeriod) // both sides, one packet each per 20 ms
		r.tap(i%2 == 0, lawMu, 0, 1, uint32(i/2)*frameSamples, payload, at)
		if i%64 == 63 {
			r.drain()
			if err := r.flush(r.position(at.Add(-recordDelay))); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	if err := r.close(nil); err != nil {
		b.Fatal(err)
	}
}
