package media

import (
	"context"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-audio/audio"
	"github.com/go-audio/wav"
	"github.com/pion/rtp"
	"github.com/zaf/g711"
)

// playInto plays src toward a local socket and returns the packets received and how long they
// took to arrive.
func playInto(t *testing.T, src Source, pt uint8, max int) ([]rtp.Packet, time.Duration) {
	t.Helper()
	rx := newEndpoint(t)
	tx := newEndpoint(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Play(ctx, tx.conn, rx.conn.LocalAddr().(*net.UDPAddr).AddrPort(), pt, src) }()
	var pkts []rtp.Packet
	var first time.Time
	buf := make([]byte, 1500)
	for len(pkts) < max {
		rx.conn.SetReadDeadline(time.Now().Add(time.Second))
		n, _, err := rx.conn.ReadFromUDP(buf)
		if err != nil {
			break
		}
		if first.IsZero() {
			first = time.Now()
		}
		var p rtp.Packet
		if err := p.Unmarshal(append([]byte(nil), buf[:n]...)); err != nil {
			t.Fatalf("not RTP: %v", err)
		}
		pkts = append(pkts, p)
	}
	elapsed := time.Since(first)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return pkts, elapsed
}

func checkStream(t *testing.T, pkts []rtp.Packet, pt uint8) {
	t.Helper()
	for i, p := range pkts {
		if p.Version != 2 || p.PayloadType != pt || len(p.Payload) != 160 || p.SSRC != pkts[0].SSRC {
			t.Fatalf("packet %d: version %d pt %d payload %d ssrc %x", i, p.Version, p.PayloadType, len(p.Payload), p.SSRC)
		}
		if i > 0 && (p.SequenceNumber != pkts[i-1].SequenceNumber+1 || p.Timestamp != pkts[i-1].Timestamp+160) {
			t.Fatalf("packet %d: sequence %d timestamp %d after %d/%d", i, p.SequenceNumber, p.Timestamp,
				pkts[i-1].SequenceNumber, pkts[i-1].Timestamp)
		}
	}
	if !pkts[0].Marker {
		t.Fatal("the first packet must carry the marker bit (start of talkspurt)")
	}
}

func TestToneIsPacedRTP(t *testing.T) {
	pkts, elapsed := playInto(t, Ringback(PCMU), PCMU.PayloadType, 15)
	if len(pkts) != 15 {
		t.Fatalf("%d packets", len(pkts))
	}
	checkStream(t, pkts, PCMU.PayloadType)
	// Paced, not sent in a burst: 15 frames span 14 periods of 20 ms at the least (a slow machine
	// only makes this longer).
	if elapsed < 14*framePeriod-20*time.Millisecond {
		t.Fatalf("15 frames arrived within %v: not paced at 20 ms", elapsed)
	}
	// The first second of ringback is the 425 Hz tone: the decoded audio has energy.
	var sum float64
	for _, b := range pkts[0].Payload {
		v := float64(g711.DecodeUlawFrame(b))
		sum += v * v
	}
	if rms := math.Sqrt(sum / 160); rms < 1000 {
		t.Fatalf("tone RMS %.0f: silence", rms)
	}
}

func writeWAV(t *testing.T, path string, samples []int, rate, chans int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e := wav.NewEncoder(f, rate, 16, chans, 1)
	if err := e.Write(&audio.IntBuffer{Data: samples, Format: &audio.Format{NumChannels: chans, SampleRate: rate}, SourceBitDepth: 16}); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestWAVPlayback(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hold.wav")
	samples := make([]int, 800) // 100 ms: five frames
	for i := range samples {
		samples[i] = int(8000 * math.Sin(2*math.Pi*1000*float64(i)/8000))
	}
	writeWAV(t, path, samples, 8000, 1)
	src, err := LoadWAV(path, PCMA, false)
	if err != nil {
		t.Fatal(err)
	}
	pkts, _ := playInto(t, src, PCMA.PayloadType, 10)
	if len(pkts) != 5 {
		t.Fatalf("%d packets from 100 ms of audio, want 5", len(pkts))
	}
	checkStream(t, pkts, PCMA.PayloadType)
	for i, b := range pkts[2].Payload {
		want := samples[320+i]
		if got := int(g711.DecodeAlawFrame(b)); math.Abs(float64(got-want)) > 300 {
			t.Fatalf("sample %d decodes to %d, want about %d", 320+i, got, want)
		}
	}
}

func TestLoadWAVRefuses(t *testing.T) {
	dir := t.TempDir()
	stereo := filepath.Join(dir, "stereo.wav")
	writeWAV(t, stereo, make([]int, 1600), 8000, 2)
	cd := filepath.Join(dir, "cd.wav")
	writeWAV(t, cd, make([]int, 4410), 44100, 1)
	junk := filepath.Join(dir, "junk.wav")
	os.WriteFile(junk, []byte("not a wav file at all"), 0o644)
	for path, want := range map[string]string{stereo: "mono", cd: "8000 Hz", junk: "not a WAV", filepath.Join(dir, "none.wav"): "no such file"} {
		if _, err := LoadWAV(path, PCMU, false); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error saying %q", filepath.Base(path), err, want)
		}
	}
}
