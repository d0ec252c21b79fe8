package pbx

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/internal/pinguard"
	"github.com/pbxkit/pbxkit/store"
)

// The voicemail application (issue 14 point 2): callers leave messages (Voicemail, behind
// b2bua.Call.Voicemail and default routing), mailbox owners hear them with the feature codes
// (vmmenu.go). It is built on the call's application verbs (Answer, Play, Gather, RecordCaller),
// so it needs the media relay, and on the store's voicemail API; its files live under
// Config.DataDir/voicemail.

// Limits of a message.
const (
	// MaxVoicemailMessage is the longest message recorded.
	MaxVoicemailMessage = 3 * time.Minute
	// MaxVoicemailMessages is how many messages (new and saved) a mailbox holds; a caller to a
	// full mailbox hears so and is hung up, as with Asterisk's maxmsg (100 by default). Each
	// message may take up to ~2.9 MB on disk.
	MaxVoicemailMessages = 100
	// voicemailSilence ends a message after this much silence.
	voicemailSilence = 5 * time.Second
	// minVoicemailMessage: shorter recordings (the caller hung up at the beep) are dropped.
	minVoicemailMessage = time.Second
)

// voicemailStore is what the application needs from the store; *store.Store has it.
type voicemailStore interface {
	Extension(ctx context.Context, number string) (*store.Extension, error)
	AddVoicemail(ctx context.Context, m *store.VoicemailMessage) error
	VoicemailMessages(ctx context.Context, mailbox, folder string) ([]store.VoicemailMessage, error)
	SetVoicemailFolder(ctx context.Context, mailbox string, id int64, folder string) error
	DeleteVoicemail(ctx context.Context, mailbox string, id int64) (*store.VoicemailMessage, error)
	MailboxCounts(ctx context.Context, mailbox string) (store.MailboxCounts, error)
}

var _ voicemailStore = (*store.Store)(nil)

// voicemailApp is pbx's b2bua.VoicemailApp.
type voicemailApp struct {
	dir     string // Config.DataDir/voicemail: one folder per mailbox
	prompts string // Config.DataDir/voicemail-prompts: beside the mailboxes, not among them
	store   voicemailStore
	log     *slog.Logger
	now     func() time.Time
	// pins counts wrong PINs per mailbox and source across calls (vmpin.go).
	pins *pinguard.Guard
	// authFail counts a wrong PIN as a failed authentication of its source (nil: not counted).
	authFail func(ip netip.Addr, user string, req *sip.Request, reason string)
	// clientIP is the address a request comes from (PBX.clientIP).
	clientIP func(req *sip.Request) (netip.Addr, bool)
	// maxMessages is how many messages a mailbox holds (MaxVoicemailMessages).
	maxMessages int
}

var _ b2bua.VoicemailApp = (*voicemailApp)(nil)

// newVoicemailApp makes the application when the PBX can run it: a media relay to answer with,
// a data directory to keep messages in and a store that keeps voicemail. Otherwise it returns
// nil, and calls routed to a mailbox get the status they would have got without one.
func (p *PBX) newVoicemailApp() (*voicemailApp, error) {
	vs, ok := p.store.(voicemailStore)
	if !ok || p.relay == nil || p.cfg.DataDir == "" {
		return nil, nil
	}
	dir, prompts := p.VoicemailDir(), filepath.Join(p.cfg.DataDir, voicemailPrompts)
	if err := writePrompts(prompts); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "prompts", promptGreeting+".wav")); err == nil {
		p.log.Warn("voicemail prompts are read from "+prompts+" now: the ones in voicemail/prompts are not used (move them)",
			"component", "voicemail")
	}
	app := &voicemailApp{dir: dir, prompts: prompts, store: vs, log: p.log.With("component", "voicemail"), now: p.now,
		pins: pinguard.New(0, 0, p.now), clientIP: p.clientIP, maxMessages: MaxVoicemailMessages}
	if p.auth != nil {
		app.authFail = p.auth.fail
	}
	return app, nil
}

// prompt is the path of a prompt (vmprompts.go).
func (v *voicemailApp) prompt(name string) string {
	return filepath.Join(v.prompts, name+".wav")
}

// greeting is the mailbox's recorded greeting, or the default one.
func (v *voicemailApp) greeting(mailbox string) string {
	own := filepath.Join(v.dir, mailbox, "greeting.wav")
	if _, err := os.Stat(own); err == nil {
		return own
	}
	return v.prompt(promptGreeting)
}

// Voicemail takes a message for mailbox: it answers (unless the PBX answered already), plays
// the greeting, beeps, records the caller until silence, '#', MaxVoicemailMessage or hang-up,
// files the message (the mailbox's lamps follow through the store) and hangs up. A mailbox that
// is off is b2bua.ErrNoVoicemail, as is a call the PBX cannot answer itself.
func (v *voicemailApp) Voicemail(ctx context.Context, c *b2bua.Call, mailbox string) error {
	ext, err := v.store.Extension(ctx, mailbox)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: no mailbox %s", b2bua.ErrNoVoicemail, mailbox)
	case err != nil:
		return fmt.Errorf("pbx: voicemail: %w", err)
	case !ext.Voicemail:
		return fmt.Errorf("%w: the mailbox of %s is off", b2bua.ErrNoVoicemail, mailbox)
	}
	if err := c.Answer(ctx); err != nil {
		if c.Decided() {
			return hungUp(err)
		}
		// No relay, or no codec the PBX can record (a caller offering no G.711): the caller gets
		// the status it would have got without voicemail.
		v.log.Warn("voicemail cannot answer", "ext", mailbox, "call_id", c.ID(), "error", err)
		return fmt.Errorf("%w: %w", b2bua.ErrNoVoicemail, err)
	}
	if full, err := v.full(ctx, mailbox); err != nil || full {
		if err == nil {
			v.log.Warn("voicemail: mailbox full, message refused", "ext", mailbox, "call_id", c.ID(), "max", v.maxMessages)
		}
		_, _ = c.Play(ctx, []string{v.prompt(promptFull), v.prompt(promptGoodbye)}, b2bua.PlayOptions{})
		c.Hangup("voicemail: mailbox full")
		return err
	}
	if _, err := c.Play(ctx, []string{v.greeting(mailbox)}, b2bua.PlayOptions{}); err != nil {
		return hungUp(err)
	}
	folder := filepath.Join(v.dir, mailbox)
	if err := os.MkdirAll(folder, 0o750); err != nil {
		return fmt.Errorf("pbx: voicemail: %w", err)
	}
	path := filepath.Join(folder, v.now().UTC().Format("20060102-150405")+"-"+randomToken(4)+".wav")
	rec, err := c.RecordCaller(ctx, path, b2bua.RecordOptions{Max: MaxVoicemailMessage, Silence: voicemailSilence, Beep: true})
	if err != nil {
		return hungUp(err)
	}
	if err := v.file(context.WithoutCancel(ctx), c, mailbox, rec); err != nil {
		return err
	}
	if c.InApplication() {
		_, _ = c.Play(ctx, []string{v.prompt(promptGoodbye)}, b2bua.PlayOptions{})
		c.Hangup("voicemail left")
	}
	return nil
}

// full reports whether mailbox holds maxMessages messages already.
func (v *voicemailApp) full(ctx context.Context, mailbox string) (bool, error) {
	n, err := v.store.MailboxCounts(ctx, mailbox)
	if err != nil {
		return false, fmt.Errorf("pbx: voicemail: %w", err)
	}
	return n.New+n.Old >= v.maxMessages, nil
}

// file stores a recording as a message of mailbox, or drops it when it is too short to be one.
func (v *voicemailApp) file(ctx context.Context, c *b2bua.Call, mailbox string, rec b2bua.Recording) error {
	if rec.Seconds < minVoicemailMessage.Seconds() {
		if err := os.Remove(rec.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			v.log.Warn("short voicemail recording not removed", "path", rec.Path, "error", err)
		}
		v.log.Info("voicemail too short: dropped", "ext", mailbox, "call_id", c.ID(), "seconds", rec.Seconds)
		return nil
	}
	from := c.Request().From()
	m := &store.VoicemailMessage{Mailbox: mailbox, Caller: from.Address.User, CallerName: from.DisplayName,
		CallID: c.ID(), Path: rec.Path, Seconds: int(math.Round(rec.Seconds))}
	if err := v.store.AddVoicemail(ctx, m); err != nil {
		return fmt.Errorf("pbx: voicemail for %s (recording kept at %s): %w", mailbox, rec.Path, err)
	}
	v.log.Info("voicemail left", "ext", mailbox, "id", m.ID, "call_id", c.ID(), "caller", m.Caller, "seconds", rec.Seconds)
	return nil
}

// hungUp turns the error of a verb that found the call ended (the caller hung up, the usual end
// of a voicemail call) into nil.
func hungUp(err error) error {
	if errors.Is(err, b2bua.ErrDecided) || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// VoicemailDir is the folder the messages are recorded in, one folder per mailbox: voicemail in
// Config.DataDir.
func (p *PBX) VoicemailDir() string { return filepath.Join(p.cfg.DataDir, "voicemail") }
