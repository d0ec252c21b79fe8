package pbx

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/pbxkit/pbxkit/b2bua"
)

// Recording a mailbox's greeting by phone (as Asterisk's mailbox options do): key 0 in the
// mailbox menu (vmmenu.go), after a message or at "no (more) messages". A beep, then the
// greeting until '#', voicemailSilence of silence or maxGreeting; it replaces
// voicemail/NUMBER/greeting.wav (written beside it under a new name first, then renamed over
// it, so callers never hear half a greeting). One shorter than minVoicemailMessage is dropped
// and the old greeting kept.

// Greeting limits and keys.
const (
	maxGreeting     = 60 * time.Second
	greetingKey     = "0"
	greetingKeyWait = time.Second // after "no (more) messages": time to key 0 before goodbye
)

// recordGreeting records mailbox's greeting and says "saved" (or "invalid" when too short).
func (v *voicemailApp) recordGreeting(ctx context.Context, c *b2bua.Call, mailbox string) error {
	folder := filepath.Join(v.dir, mailbox)
	if err := os.MkdirAll(folder, 0o750); err != nil {
		return fmt.Errorf("pbx: voicemail greeting: %w", err)
	}
	tmp := filepath.Join(folder, "greeting-"+randomToken(4)+".wav")
	rec, err := c.RecordCaller(ctx, tmp, b2bua.RecordOptions{Max: maxGreeting, Silence: voicemailSilence, Beep: true})
	if err != nil {
		v.removeQuietly(tmp)
		return err
	}
	prompt := promptSaved
	if rec.Seconds < minVoicemailMessage.Seconds() {
		v.removeQuietly(rec.Path)
		v.log.Info("voicemail greeting too short: old one kept", "ext", mailbox, "call_id", c.ID(), "seconds", rec.Seconds)
		prompt = promptInvalid
	} else if err := os.Rename(rec.Path, filepath.Join(folder, "greeting.wav")); err != nil {
		v.removeQuietly(rec.Path)
		return fmt.Errorf("pbx: voicemail greeting: %w", err)
	} else {
		v.log.Info("voicemail greeting recorded", "ext", mailbox, "call_id", c.ID(), "seconds", rec.Seconds)
	}
	_, err = c.Play(ctx, []string{v.prompt(prompt)}, b2bua.PlayOptions{})
	return err
}

// removeQuietly removes a recording that is not kept (it may not exist).
func (v *voicemailApp) removeQuietly(path string) {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		v.log.Warn("greeting recording not removed", "path", path, "error", err)
	}
}
