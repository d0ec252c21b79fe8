package b2bua

import (
	"context"
	"fmt"
	"time"
)

// The application verbs on a call the PBX answered itself (Answer): Play, Gather, Record. Each
// returns ErrNotAnswered before Answer, and ErrDecided once the call has ended (the caller hung
// up meanwhile: not the dialplan's fault).

// PlayOptions say how Play plays.
type PlayOptions struct {
	// Loop plays the sounds this many times in all (0 and 1: once).
	Loop int
	// Interrupt stops playing at the caller's first key press, or at once when a key press is
	// waiting already. The key stays queued for the next Gather, as Asterisk's Background leaves
	// it for the dialplan.
	Interrupt bool
}

// Play plays sounds to the caller, one after the other, paced at 20 ms: each the path of a WAV
// file (8 kHz mono, 16-bit PCM or G.711), "tone:ringback", "tone:busy" or "tone:beep" (one
// cadence each: 5 s, 1 s, 250 ms; Loop repeats them). It returns when they were played, a key
// interrupted them (interrupted true), ctx ended or the call ended. A sound that cannot be
// loaded is an error before anything plays.
func (c *Call) Play(ctx context.Context, sounds []string, opts PlayOptions) (interrupted bool, err error) {
	app, m, err := c.appEnd()
	if err != nil {
		return false, err
	}
	for _, s := range sounds { // each is checked before anything plays
		if _, err := m.Sound(s); err != nil {
			return false, fmt.Errorf("b2bua: play %q: %w", s, err)
		}
	}
	for range max(opts.Loop, 1) {
		for _, s := range sounds {
			f, err := m.Sound(s)
			if err != nil {
				return false, fmt.Errorf("b2bua: play %q: %w", s, err)
			}
			stopped, keyed, err := c.playOne(ctx, app, f, opts.Interrupt)
			if stopped || err != nil {
				return keyed, err
			}
		}
	}
	return false, nil
}

// appEnd returns the caller's application end and the media session, or why there is none.
func (c *Call) appEnd() (*callApp, MediaSession, error) {
	m := c.mediaSession()
	if m == nil {
		return nil, nil, ErrNoRelay
	}
	app := c.application()
	if app == nil {
		c.mu.Lock()
		ended := c.state == stateEnded
		c.mu.Unlock()
		if ended {
			return nil, nil, ErrDecided
		}
		return nil, nil, ErrNotAnswered
	}
	return app, m, nil
}

// playOne plays f until it is over (stopped false), or stops it: at a key press when interrupt
// (keyed true), when ctx ends or the application ends.
func (c *Call) playOne(ctx context.Context, app *callApp, f Frames, interrupt bool) (stopped, keyed bool, err error) {
	if waiting, _ := app.pending(); interrupt && waiting {
		return true, true, nil
	}
	played := app.start(f)
	defer app.silence(played)
	for {
		var keys <-chan struct{}
		if interrupt {
			var waiting bool
			if waiting, keys = app.pending(); waiting {
				return true, true, nil
			}
		}
		select {
		case <-played:
			return false, false, nil
		case <-keys:
		case <-ctx.Done():
			return true, false, ctx.Err()
		case <-app.gone:
			return true, false, ErrDecided
		}
	}
}

// GatherOptions say how Gather collects key presses.
type GatherOptions struct {
	// Max is how many keys to collect at most; 0 means DefaultGatherMax.
	Max int
	// Timeout is how long to wait for the first key and between keys; 0 means
	// DefaultGatherTimeout.
	Timeout time.Duration
	// Terminator ends the input early and is not part of it: one key (0-9, *, #, A-D, either
	// case), "#" by default (DefaultTerminator), NoTerminator for none. Anything else makes Gather
	// fail.
	Terminator string
	// Prompt, when set, is played first (a WAV file or a tone); a key press stops it and counts.
	Prompt string
}

// Defaults of GatherOptions.
const (
	DefaultGatherMax     = 32
	DefaultGatherTimeout = 5 * time.Second
	DefaultTerminator    = "#"
	NoTerminator         = "none"
)

// Gather collects the caller's key presses (RFC 4733 events and SIP INFO, including those pressed
// since the last Gather) until Max keys, the Terminator, or Timeout without a key. It returns the
// keys pressed, without the terminator: "" when none was pressed in time.
func (c *Call) Gather(ctx context.Context, opts GatherOptions) (string, error) {
	app, _, err := c.appEnd()
	if err != nil {
		return "", err
	}
	if opts.Max <= 0 {
		opts.Max = DefaultGatherMax
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultGatherTimeout
	}
	var term byte
	switch opts.Terminator {
	case "":
		term = DefaultTerminator[0]
	case NoTerminator:
	default:
		k, ok := keyOf(opts.Terminator)
		if !ok || len(opts.Terminator) != 1 {
			return "", fmt.Errorf("b2bua: gather: terminator %q is not a key (0-9, *, #, A-D)", opts.Terminator)
		}
		term = k[0]
	}
	if opts.Prompt != "" {
		if _, err := c.Play(ctx, []string{opts.Prompt}, PlayOptions{Interrupt: true}); err != nil {
			return "", err
		}
	}
	var got []byte
	timer := time.NewTimer(opts.Timeout)
	defer timer.Stop()
	for len(got) < opts.Max {
		if k := app.take(); k != 0 {
			if k == term {
				break
			}
			got = append(got, k)
			timer.Reset(opts.Timeout)
			continue
		}
		waiting, keys := app.pending()
		if waiting {
			continue
		}
		select {
		case <-keys:
		case <-timer.C:
			return string(got), nil
		case <-ctx.Done():
			return string(got), ctx.Err()
		case <-app.gone:
			return string(got), ErrDecided
		}
	}
	return string(got), nil
}
