package media

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-audio/wav"
	"github.com/zaf/g711"

	"github.com/pbxkit/pbxkit/internal/audiotest"
)

// readStereo reads a recording: its two channels and the WAV's format.
func readStereo(t *testing.T, path string) (left, right []int16) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := wav.NewDecoder(f)
	buf, err := d.FullPCMBuffer()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if d.NumChans != 2 || d.SampleRate != 8000 || d.BitDepth != 16 || d.WavAudioFormat != 1 {
		t.Fatalf("%s: %d channels, %d Hz, %d bits, format %d; want 2, 8000, 16-bit PCM", path, d.NumChans, d.SampleRate, d.BitDepth, d.WavAudioFormat)
	}
	for i := 0; i+1 < len(buf.Data); i += 2 {
		left = append(left, int16(buf.Data[i]))
		right = append(right, int16(buf.Data[i+1]))
	}
	return left, right
}

// playTone sends a tone as PCMU RTP from e to the PBX's port until ctx ends.
func playTone(ctx context.Context, wg *sync.WaitGroup, e *endpoint, to int, freq float64) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(to))
		_ = Play(ctx, e.conn, dst, 0, Tone(PCMU, 0, 0, freq))
	}()
}

// dominant checks that samples carry want far more than other.
func dominant(t *testing.T, name string, samples []int16, want, other float64) {
	t.Helper()
	pw, po := audiotest.Goertzel(samples, 8000, want), audiotest.Goertzel(samples, 8000, other)
	if pw < 1e5 || pw < 20*po {
		t.Errorf("%s: power at %v Hz %.0f, at %v Hz %.0f: want the first dominant", name, want, pw, other, po)
	}
}

func TestRecordingStereoAligned(t *testing.T) {
	r := newTestRelay(t, 2, Config{})
	a, b := newEndpoint(t), newEndpoint(t)
	s, pa, pb := callSession(t, r, a, b)
	path := filepath.Join(t.TempDir(), "call.wav")
	start := time.Now()
	if err := s.StartRecording(path); err != nil {
		t.Fatal(err)
	}
	if got := s.Recording(); got != path {
		t.Fatalf("Recording() = %q", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	playTone(ctx, &wg, a, pa, 440)
	// The callee starts talking 500 ms later (it answered late): its channel is silent until then.
	time.Sleep(500 * time.Millisecond)
	playTone(ctx, &wg, b, pb, 1000)
	time.Sleep(1500 * time.Millisecond)
	before := time.Since(start)
	got, err := s.StopRecording()
	after := time.Since(start) // StopRecording also completes and syncs the file
	cancel()
	wg.Wait()
	if err != nil || got != path {
		t.Fatalf("StopRecording = %q, %v", got, err)
	}
	left, right := readStereo(t, path)
	// The file is as long as the recording ran: from StartRecording to StopRecording, each of
	// which the test timed from outside.
	if d := time.Duration(len(left)) * time.Second / 8000; d > after || d < before-250*time.Millisecond {
		t.Errorf("recording lasts %v, the test recorded for %v to %v", d, before, after)
	}
	dominant(t, "left (caller)", left[2400:], 440, 1000)
	dominant(t, "right (callee)", right[len(right)-8000:], 1000, 440)
	// Before the callee talked its channel is silent, while the caller's carries its tone.
	if p := audiotest.Goertzel(right[:3200], 8000, 1000); p > 1e3 {
		t.Errorf("callee's channel has power %.0f at 1000 Hz in the first 400 ms, before it sent anything", p)
	}
	dominant(t, "left (caller) before the callee talked", left[800:3200], 440, 1000)
}

func TestRecordingStartStopErrors(t *testing.T) {
	r := newTestRelay(t, 2, Config{})
	a, b := newEndpoint(t), newEndpoint(t)
	s, _, _ := callSession(t, r, a, b)
	dir := t.TempDir()
	if _, err := s.StopRecording(); !errors.Is(err, ErrNotRecording) {
		t.Fatalf("stop without recording: %v", err)
	}
	if err := s.StartRecording(filepath.Join(dir, "1.wav")); err != nil {
		t.Fatal(err)
	}
	if err := s.StartRecording(filepath.Join(dir, "2.wav")); !errors.Is(err, ErrRecording) {
		t.Fatalf("second start: %v", err)
	}
	if _, err := s.StopRecording(); err != nil {
		t.Fatal(err)
	}
	// A new start makes a new file; closing the session completes it.
	if err := s.StartRecording(filepath.Join(dir, "3.wav")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s.Recording() != "" {
		t.Fatal("still recording after Close")
	}
	for _, f := range []string{"1.wav", "3.wav"} {
		readStereo(t, filepath.Join(dir, f))
	}
	if err := s.StartRecording(filepath.Join(dir, "4.wav")); err == nil {
		t.Fatal("recording a closed session")
	}
	if err := s.StartRecording(filepath.Join(dir, "missing", "5.wav")); err == nil {
		t.Fatal("recording into a missing folder")
	}
}

func TestRecordingRefusesUndecodableCodec(t *testing.T) {
	r := newTestRelay(t, 2, Config{Codecs: []string{"G722", "PCMU"}})
	a, b := newEndpoint(t), newEndpoint(t)
	g722 := func(e *endpoint) []byte {
		return []byte(strings.Replace(string(e.sdp("")), "RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000", "RTP/AVP 9 0 101\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000", 1))
	}
	s, _, _ := callSessionWith(t, r, g722(a), g722(b))
	err := s.StartRecording(filepath.Join(t.TempDir(), "x.wav"))
	if !errors.Is(err, ErrUndecodable) || !strings.Contains(err.Error(), "G722") {
		t.Fatalf("recording a G.722 call: %v", err)
	}
	// The callee answers again in PCMU (a re-INVITE): now it can be recorded.
	if _, err := s.Rewrite(false, b.sdp("")); err != nil {
		t.Fatal(err)
	}
	if err := s.StartRecording(filepath.Join(t.TempDir(), "y.wav")); err != nil {
		t.Fatal(err)
	}
}

// TestRecorderPlacesByTimestamp: packets take the place their RTP timestamps give, whatever
// their arrival jitter or order; a lost packet leaves silence; a new SSRC (another stream, as
// after a transfer) is placed by the wall clock again.
func TestRecorderPlacesByTimestamp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.wav")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	r := newRecorder(f, path, t0, slog.New(slog.DiscardHandler))
	frame := func(i int) []byte { // PCMU frames of a constant level, different for each packet
		b := make([]byte, frameSamples)
		for k := range b {
			b[k] = byte(0x10 + i)
		}
		return b
	}
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	// Packet i is stamped i*160 and arrives about when it ended, (i+1)*20 ms, with jitter; 5 is
	// lost, 8 arrives before 7.
	jitter := []int{0, 13, 2, 31, 7, 0, 25, 38, 1, 17}
	for _, i := range []int{0, 1, 2, 3, 4, 6, 8, 7, 9} {
		r.tap(true, lawMu, 0, 0xAA, 1000+uint32(i)*frameSamples, frame(i), ms((i+1)*20+jitter[i]))
	}
	// The callee's stream, then another one (a new SSRC with another timestamp base).
	r.tap(false, lawMu, 0, 0xBB, 7, frame(20), ms(100))
	r.tap(false, lawMu, 0, 0xCC, 99999, frame(21), ms(400))
	r.drain()
	if err := r.flush(r.position(ms(500))); err != nil {
		t.Fatal(err)
	}
	if err := r.close(nil); err != nil {
		t.Fatal(err)
	}
	left, right := readStereo(t, path)
	if len(left) != 4000 {
		t.Fatalf("%d samples, want 4000 (500 ms)", len(left))
	}
	level := func(i int) int16 { return g711.DecodeUlawFrame(byte(0x10 + i)) }
	for i := range 10 {
		want := level(i)
		if i == 5 {
			want = 0 // lost: silence
		}
		for k := i * frameSamples; k < (i+1)*frameSamples; k++ {
			if left[k] != want {
				t.Fatalf("left sample %d (packet %d) = %d, want %d", k, i, left[k], want)
			}
		}
	}
	if left[10*frameSamples] != 0 {
		t.Fatal("audio after the last packet")
	}
	// The callee's first stream ended at 100 ms, the second at 400 ms: placed by the clock.
	if right[80*8-1] != 0 || right[80*8] != level(20) || right[100*8-1] != level(20) || right[100*8] != 0 {
		t.Fatalf("callee's first packet not at 80-100 ms: %v", right[80*8-2:100*8+2])
	}
	if right[380*8-1] != 0 || right[380*8] != level(21) || right[400*8-1] != level(21) || right[400*8] != 0 {
		t.Fatalf("callee's new stream not at 380-400 ms")
	}
}
