package media

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"github.com/go-audio/audio"
	"github.com/go-audio/wav"
)

// Sounds an App plays, as 16-bit linear PCM at 8 kHz: the tones an IVR names ("tone:ringback",
// "tone:busy", "tone:beep") and WAV files; and recordings written back as WAV.

// Samples yields 20 ms frames of 16-bit linear audio at 8 kHz.
type Samples interface {
	// Samples fills dst (160 samples) with the next frame, and reports false when the sound is
	// over (dst is then left as it was).
	Samples(dst []int16) bool
}

// The tones Sound knows, each one cadence long (ETSI ES 201 970 ringback and busy; a short
// 1 kHz beep before a recording).
var tones = map[string]struct {
	on, off time.Duration
	freqs   []float64
}{
	"tone:ringback": {time.Second, 4 * time.Second, []float64{425}},
	"tone:busy":     {500 * time.Millisecond, 500 * time.Millisecond, []float64{425}},
	"tone:beep":     {250 * time.Millisecond, 0, []float64{1000}},
}

// ErrUnknownSound is returned by Sound for a "tone:" name it does not know.
var ErrUnknownSound = errors.New("media: unknown tone")

// Sound returns what an IVR plays for name: "tone:ringback" (one cadence, 5 s), "tone:busy"
// (1 s), "tone:beep" (250 ms), or else the path of a WAV file (LoadSamples).
func Sound(name string) (Samples, error) {
	if strings.HasPrefix(name, "tone:") {
		t, ok := tones[name]
		if !ok {
			return nil, fmt.Errorf("%w %q (tone:ringback, tone:busy or tone:beep)", ErrUnknownSound, name)
		}
		return ToneOnce(t.on, t.off, t.freqs...), nil
	}
	return LoadSamples(name)
}

// ToneOnce is one cadence of a tone: the frequencies given (mixed at equal level) for on, then
// silence for off.
func ToneOnce(on, off time.Duration, freqs ...float64) Samples {
	t := &tone{freqs: freqs, on: int(on.Seconds() * sampleRate), off: int(off.Seconds() * sampleRate)}
	t.limit = t.on + t.off
	return t
}

// Samples is the tone's next frame of linear audio.
func (t *tone) Samples(dst []int16) bool {
	if t.limit > 0 && t.n >= t.limit {
		return false
	}
	amp := 0.25 * math.MaxInt16 / float64(max(len(t.freqs), 1)) // about -12 dBFS, no clipping when mixed
	for i := range frameSamples {
		n := t.n + i
		var v float64
		if t.off == 0 || n%(t.on+t.off) < t.on {
			for _, f := range t.freqs {
				v += amp * math.Sin(2*math.Pi*f*float64(n)/sampleRate)
			}
		}
		dst[i] = int16(v)
	}
	t.n += frameSamples
	return true
}

// pcmClip is linear audio held in memory, played once.
type pcmClip struct {
	data []int16
	pos  int
}

func (c *pcmClip) Samples(dst []int16) bool {
	if c.pos >= len(c.data) {
		return false
	}
	n := copy(dst[:frameSamples], c.data[c.pos:])
	clear(dst[n:frameSamples])
	c.pos += n
	return true
}

// LoadSamples reads a WAV file as linear audio: 8 kHz mono, 16-bit PCM or G.711 (A-law or µ-law),
// at most 10 minutes.
func LoadSamples(path string) (Samples, error) {
	data, err := readWAV(path)
	if err != nil {
		return nil, err
	}
	return &pcmClip{data: data}, nil
}

// readWAV reads a WAV file's audio as 16-bit linear samples: 8 kHz mono, 16-bit PCM or G.711
// (A-law or µ-law), at most maxAudioLength, not empty.
func readWAV(path string) ([]int16, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}
	defer f.Close()
	d := wav.NewDecoder(f)
	if !d.IsValidFile() {
		return nil, fmt.Errorf("media: %s is not a WAV file", path)
	}
	if d.SampleRate != sampleRate || d.NumChans != 1 {
		return nil, fmt.Errorf("media: %s: want 8000 Hz mono, got %d Hz with %d channels", path, d.SampleRate, d.NumChans)
	}
	if dur, err := d.Duration(); err == nil && dur > maxAudioLength {
		return nil, fmt.Errorf("media: %s: longer than %v", path, maxAudioLength)
	}
	var data []int16
	switch {
	case d.WavAudioFormat == 1 && d.BitDepth == 16:
		buf, err := d.FullPCMBuffer()
		if err != nil {
			return nil, fmt.Errorf("media: %s: %w", path, err)
		}
		data = make([]int16, len(buf.Data))
		for i, s := range buf.Data {
			data[i] = int16(s)
		}
	case (d.WavAudioFormat == 6 || d.WavAudioFormat == 7) && d.BitDepth == 8:
		if err := d.FwdToPCM(); err != nil {
			return nil, fmt.Errorf("media: %s: %w", path, err)
		}
		raw, err := io.ReadAll(d.PCMChunk)
		if err != nil {
			return nil, fmt.Errorf("media: %s: %w", path, err)
		}
		c := PCMA
		if d.WavAudioFormat == 7 {
			c = PCMU
		}
		data = make([]int16, len(raw))
		c.Decode(data, raw)
	default:
		return nil, fmt.Errorf("media: %s: want 16-bit PCM or G.711 (format 1, 6 or 7), got format %d with %d bits", path, d.WavAudioFormat, d.BitDepth)
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("media: %s holds no audio", path)
	}
	return data, nil
}

// WriteWAV writes pcm (8 kHz mono) to w as a 16-bit PCM WAV file.
func WriteWAV(w io.WriteSeeker, pcm []int16) error {
	enc := wav.NewEncoder(w, sampleRate, 16, 1, 1)
	data := make([]int, len(pcm))
	for i, v := range pcm {
		data[i] = int(v)
	}
	buf := &audio.IntBuffer{Format: &audio.Format{NumChannels: 1, SampleRate: sampleRate}, Data: data, SourceBitDepth: 16}
	if err := enc.Write(buf); err != nil {
		return fmt.Errorf("media: writing WAV: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("media: writing WAV: %w", err)
	}
	return nil
}
