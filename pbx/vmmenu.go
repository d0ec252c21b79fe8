package pbx

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/store"
)

// The mailbox menu of the voicemail feature codes: *97 (the caller's own mailbox) and *98 (any
// mailbox: its number first). As Asterisk's VoiceMailMain does by default, both ask for the
// mailbox PIN; *97 of a mailbox without a PIN lets its owner in (the call authenticated as that
// extension), *98 never does. Then the new messages play, oldest first, and after them the
// saved ones; each one is marked heard (saved) once played, and after each the menu waits for a
// key: 1 plays it again, 7 deletes it, 9 saves it, # goes to the next, 0 records the mailbox's
// greeting (vmgreeting.go; also right after "no (more) messages").

// Menu limits.
const (
	menuAttempts = 3               // tries at the mailbox number, the PIN, and a menu key
	menuTimeout  = 5 * time.Second // waiting for a key
)

// listen runs the mailbox menu for the caller; mailbox is "" when it must be asked (*98),
// owner reports that the caller authenticated as mailbox (*97).
func (v *voicemailApp) listen(ctx context.Context, c *b2bua.Call, mailbox string, owner bool) error {
	if err := c.Answer(ctx); err != nil {
		return hungUp(err)
	}
	ext, err := v.login(ctx, c, mailbox, owner)
	if err != nil || ext == nil {
		return v.goodbye(ctx, c, hungUp(err))
	}
	msgs, err := v.messages(ctx, ext.Number)
	if err != nil {
		return v.goodbye(ctx, c, err)
	}
	for i := 0; i < len(msgs); {
		step, err := v.present(ctx, c, &msgs[i])
		if err != nil || step == 0 {
			return v.goodbye(ctx, c, hungUp(err))
		}
		i += step - 1 // step 1: the same message again; 2: the next
	}
	// "No (more) messages", then a moment to key 0 (record the greeting) before goodbye.
	key, err := c.Gather(ctx, b2bua.GatherOptions{Max: 1, Timeout: greetingKeyWait, Terminator: b2bua.NoTerminator,
		Prompt: v.prompt(promptNoMessages)})
	if err != nil {
		return hungUp(err)
	}
	if key == greetingKey {
		if err := v.recordGreeting(ctx, c, ext.Number); err != nil {
			return v.goodbye(ctx, c, hungUp(err))
		}
	}
	return v.goodbye(ctx, c, nil)
}

// goodbye plays the goodbye prompt and hangs up; err is passed through.
func (v *voicemailApp) goodbye(ctx context.Context, c *b2bua.Call, err error) error {
	if c.InApplication() {
		_, _ = c.Play(ctx, []string{v.prompt(promptGoodbye)}, b2bua.PlayOptions{})
		c.Hangup("voicemail menu done")
	}
	return err
}

// login asks for the mailbox number when it is not known, then for its PIN. It returns nil
// (and no error) when the caller did not get in within menuAttempts.
func (v *voicemailApp) login(ctx context.Context, c *b2bua.Call, mailbox string, owner bool) (*store.Extension, error) {
	for range menuAttempts {
		number := mailbox
		if number == "" {
			var err error
			if number, err = c.Gather(ctx, b2bua.GatherOptions{Max: store.MaxNumberLen, Timeout: menuTimeout,
				Prompt: v.prompt(promptMailbox)}); err != nil {
				return nil, err
			}
		}
		ext, err := v.mailbox(ctx, number)
		if err != nil {
			return nil, err
		}
		if ext != nil && !ext.HasPIN() && owner {
			return ext, nil // *97 of a mailbox without a PIN: the call's authentication suffices
		}
		pin, err := c.Gather(ctx, b2bua.GatherOptions{Max: store.MaxPINLen, Timeout: menuTimeout, Prompt: v.prompt(promptPIN)})
		if err != nil {
			return nil, err
		}
		if v.checkPIN(c, ext, number, pin) { // a wrong mailbox asks for a PIN as well: no probing
			v.log.Info("voicemail login", "ext", ext.Number, "call_id", c.ID())
			return ext, nil
		}
		v.log.Warn("voicemail login failed", "ext", number, "call_id", c.ID(), "src", c.Request().Source())
		v.pinFailed(c, number)
		if _, err := c.Play(ctx, []string{v.prompt(promptInvalid)}, b2bua.PlayOptions{}); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// mailbox returns the extension number's mailbox, nil when there is none (or it is off).
func (v *voicemailApp) mailbox(ctx context.Context, number string) (*store.Extension, error) {
	if store.ValidateNumber(number) != nil {
		return nil, nil
	}
	ext, err := v.store.Extension(ctx, number)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("pbx: voicemail menu: %w", err)
	case !ext.Voicemail:
		return nil, nil
	}
	return ext, nil
}

// messages lists a mailbox's new messages, then its saved ones.
func (v *voicemailApp) messages(ctx context.Context, mailbox string) ([]store.VoicemailMessage, error) {
	fresh, err := v.store.VoicemailMessages(ctx, mailbox, store.FolderNew)
	if err != nil {
		return nil, fmt.Errorf("pbx: voicemail menu: %w", err)
	}
	saved, err := v.store.VoicemailMessages(ctx, mailbox, store.FolderSaved)
	if err != nil {
		return nil, fmt.Errorf("pbx: voicemail menu: %w", err)
	}
	return append(fresh, saved...), nil
}

// play plays a message. A message that cannot be played (its file missing or unreadable) is
// logged, the caller hears the "unavailable" prompt instead, and played is false: the menu
// still offers 7 (delete) and # (next), so one bad file does not block the mailbox.
func (v *voicemailApp) play(ctx context.Context, c *b2bua.Call, m *store.VoicemailMessage) (played bool, err error) {
	_, err = c.Play(ctx, []string{m.Path}, b2bua.PlayOptions{Interrupt: true})
	if err == nil {
		return true, nil
	}
	if hungUp(err) == nil || !c.InApplication() {
		return false, err
	}
	v.log.Warn("voicemail message cannot be played", "ext", m.Mailbox, "id", m.ID, "path", m.Path,
		"call_id", c.ID(), "error", err)
	_, err = c.Play(ctx, []string{v.prompt(promptUnavailable)}, b2bua.PlayOptions{Interrupt: true})
	return false, err
}

// present plays a message, marks it heard (unless it could not be played), and acts on the
// menu key. It returns 1 to play the same message again, 2 to go on to the next, 0 to end (no
// key in time).
func (v *voicemailApp) present(ctx context.Context, c *b2bua.Call, m *store.VoicemailMessage) (int, error) {
	played, err := v.play(ctx, c, m)
	if err != nil {
		return 0, err
	}
	if played && m.Folder == store.FolderNew {
		if err := v.store.SetVoicemailFolder(ctx, m.Mailbox, m.ID, store.FolderSaved); err != nil {
			return 0, fmt.Errorf("pbx: voicemail menu: %w", err)
		}
		m.Folder = store.FolderSaved
	}
	for range menuAttempts {
		key, err := c.Gather(ctx, b2bua.GatherOptions{Max: 1, Timeout: menuTimeout, Terminator: b2bua.NoTerminator,
			Prompt: v.prompt(promptMenu)})
		if err != nil {
			return 0, err
		}
		switch key {
		case "1":
			return 1, nil
		case "7":
			if _, err := v.store.DeleteVoicemail(ctx, m.Mailbox, m.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				return 0, fmt.Errorf("pbx: voicemail menu: %w", err)
			}
			v.log.Info("voicemail deleted", "ext", m.Mailbox, "id", m.ID, "call_id", c.ID())
			_, err := c.Play(ctx, []string{v.prompt(promptDeleted)}, b2bua.PlayOptions{})
			return 2, err
		case "9":
			_, err := c.Play(ctx, []string{v.prompt(promptSaved)}, b2bua.PlayOptions{})
			return 2, err
		case "#":
			return 2, nil
		case greetingKey:
			if err := v.recordGreeting(ctx, c, m.Mailbox); err != nil {
				return 0, err
			}
			continue // the menu again
		case "":
			continue
		}
		if _, err := c.Play(ctx, []string{v.prompt(promptInvalid)}, b2bua.PlayOptions{}); err != nil {
			return 0, err
		}
	}
	return 0, nil
}
