package b2bua

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// RecordOptions say how RecordCaller records (call:record in Lua; Call.Record is the call's record).
type RecordOptions struct {
	// Max is the longest recording; 0 means DefaultRecordMax, and at most MaxRecord. It ends when
	// Max of audio arrived, or by the clock a second after Max (a phone that sent less).
	Max time.Duration
	// Silence ends the recording this long, by the clock, after the caller was last loud (an
	// energy threshold: about -42 dBFS), whether quiet audio arrives or none (voice activity
	// detection); 0 never.
	Silence time.Duration
	// Beep plays "tone:beep" before recording starts.
	Beep bool
	// Root, when set, confines the file: RecordCaller's path is then a local name inside Root
	// (filepath.IsLocal: no "..", not absolute), and the file is created through Root, so no
	// symbolic link leads it out; an existing file is not replaced. The MediaSession must be a
	// MediaRootWriter. Without Root, path is taken as it is.
	Root *os.Root
}

// Limits of RecordOptions.
const (
	DefaultRecordMax = 120 * time.Second
	MaxRecord        = 30 * time.Minute
)

// Recording is what RecordCaller wrote.
type Recording struct {
	Path    string
	Seconds float64
}

// Why a recording ended, in the log line of RecordCaller.
const (
	RecordMax     = "max"
	RecordSilence = "silence"
	RecordKey     = "key"
	RecordHangup  = "hangup"
)

// RecordCaller records the caller's audio (G.711 decoded to 16-bit PCM mono, 8 kHz) to a WAV file at
// path until Max, Silence seconds of silence, the caller's '#' key, or the end of the call; the
// file is written in every case (the caller hanging up is how most messages end). Key presses
// waiting when it starts are dropped, so a '#' that ended a Gather does not end the recording.
// path is taken as it is, unless opts.Root confines it: a dialplan that lets users name files must
// confine them (Root does).
func (c *Call) RecordCaller(ctx context.Context, path string, opts RecordOptions) (Recording, error) {
	app, m, err := c.appEnd()
	if err != nil {
		return Recording{}, err
	}
	if opts.Root != nil && !filepath.IsLocal(path) {
		return Recording{}, fmt.Errorf("b2bua: record: %q is not a local name inside %s", path, opts.Root.Name())
	}
	if opts.Max <= 0 {
		opts.Max = DefaultRecordMax
	}
	opts.Max = min(opts.Max, MaxRecord)
	if opts.Beep {
		if _, err := c.Play(ctx, []string{"tone:beep"}, PlayOptions{}); err != nil {
			return Recording{}, err
		}
	}
	app.flush()
	r := newRecorder(int(opts.Max.Seconds() * 8000))
	app.record(r)
	why := c.recordUntil(ctx, app, r, opts)
	pcm := app.stopRecording()
	rec := Recording{Path: path, Seconds: float64(len(pcm)) / 8000}
	c.log.Info("recorded the caller", "path", path, "seconds", rec.Seconds, "ended_by", why)
	if err := writeRecording(m, opts.Root, path, pcm); err != nil {
		return Recording{}, fmt.Errorf("b2bua: record: %w", err)
	}
	return rec, nil
}

// MediaRootWriter is a MediaSession that writes recordings confined to a folder
// (RecordOptions.Root); the media relay's sessions are.
type MediaRootWriter interface {
	// WriteWAVIn writes pcm (8 kHz mono) to a new 16-bit PCM WAV file name inside root, created
	// through root (no path leads out of it), complete or not at all; an existing file is not
	// replaced (an error wrapping fs.ErrExist).
	WriteWAVIn(root *os.Root, name string, pcm []int16) error
}

// writeRecording writes a recording at path, or at the name path inside root.
func writeRecording(m MediaSession, root *os.Root, path string, pcm []int16) error {
	if root == nil {
		return m.WriteWAV(path, pcm)
	}
	w, ok := m.(MediaRootWriter)
	if !ok {
		return errors.New("the media cannot write inside a folder (no MediaRootWriter)")
	}
	return w.WriteWAVIn(root, path, pcm)
}

// recordUntil waits for the end of a recording and says what ended it: Max when the recorder is
// full, or by the clock (a backstop for a caller who sends little or no audio); Silence by the
// clock since the caller last was loud, whether quiet audio arrives or none (voice activity
// detection); the caller's '#'; the end of the call or of ctx.
func (c *Call) recordUntil(ctx context.Context, app *callApp, r *recorder, opts RecordOptions) string {
	backstop := time.NewTimer(opts.Max + time.Second)
	defer backstop.Stop()
	var hush *time.Timer
	var hushed <-chan time.Time // nil: silence does not end the recording
	if opts.Silence > 0 {
		hush = time.NewTimer(opts.Silence)
		defer hush.Stop()
		hushed = hush.C
	}
	for {
		_, keys := app.pending()
		if app.takeKey('#') {
			return RecordKey
		}
		select {
		case <-keys:
		case <-r.full:
			return RecordMax
		case <-backstop.C:
			return RecordMax
		case <-hushed:
			app.mu.Lock()
			quiet := time.Since(r.lastLoud())
			app.mu.Unlock()
			if quiet >= opts.Silence {
				return RecordSilence
			}
			hush.Reset(opts.Silence - quiet)
		case <-ctx.Done():
			return "context: " + ctx.Err().Error()
		case <-app.gone:
			return RecordHangup
		}
	}
}
