package b2bua

import (
	"context"
	"fmt"
	"time"
)

// RecordOptions say how RecordCaller records (call:record in Lua; Call.Record is the call's record).
type RecordOptions struct {
	// Max is the longest recording; 0 means DefaultRecordMax, and at most MaxRecord.
	Max time.Duration
	// Silence ends the recording after this much silence in a row (an energy threshold: about
	// -42 dBFS); 0 never.
	Silence time.Duration
	// Beep plays "tone:beep" before recording starts.
	Beep bool
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
// path is taken as it is: a dialplan that lets users name files must confine them itself.
func (c *Call) RecordCaller(ctx context.Context, path string, opts RecordOptions) (Recording, error) {
	app, m, err := c.appEnd()
	if err != nil {
		return Recording{}, err
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
	r := newRecorder(int(opts.Max.Seconds()*8000), int(opts.Silence.Seconds()*8000))
	app.record(r)
	why := c.recordUntil(ctx, app, r, opts.Max)
	pcm := app.stopRecording()
	rec := Recording{Path: path, Seconds: float64(len(pcm)) / 8000}
	c.log.Info("recorded the caller", "path", path, "seconds", rec.Seconds, "ended_by", why)
	if err := m.WriteWAV(path, pcm); err != nil {
		return Recording{}, fmt.Errorf("b2bua: record: %w", err)
	}
	return rec, nil
}

// recordUntil waits for the end of a recording and says what ended it.
func (c *Call) recordUntil(ctx context.Context, app *callApp, r *recorder, limit time.Duration) string {
	// A backstop for a caller who sends no audio at all: the recorder counts only what arrives.
	timer := time.NewTimer(limit + time.Second)
	defer timer.Stop()
	for {
		_, keys := app.pending()
		if app.takeKey('#') {
			return RecordKey
		}
		select {
		case <-keys:
		case <-r.full:
			return RecordMax
		case <-timer.C:
			return RecordMax
		case <-r.hushed:
			return RecordSilence
		case <-ctx.Done():
			return "context: " + ctx.Err().Error()
		case <-app.gone:
			return RecordHangup
		}
	}
}
