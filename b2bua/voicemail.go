package b2bua

import (
	"context"
	"errors"
)

// VoicemailApp takes a message for a mailbox: it answers the caller, plays the mailbox's greeting
// and a beep, records the message and files it. It is the application behind Call.Voicemail;
// pbx provides one (built on the call's own media verbs) and an embedder may give its own
// (Config.Voicemail). Voicemail returns once the caller has left the message or hung up.
type VoicemailApp interface {
	Voicemail(ctx context.Context, c *Call, mailbox string) error
}

// VoicemailFunc lets an ordinary function be a VoicemailApp.
type VoicemailFunc func(ctx context.Context, c *Call, mailbox string) error

// Voicemail calls f(ctx, c, mailbox).
func (f VoicemailFunc) Voicemail(ctx context.Context, c *Call, mailbox string) error {
	return f(ctx, c, mailbox)
}

var _ VoicemailApp = VoicemailFunc(nil)

// ErrNoVoicemail is Call.Voicemail's error when the engine has no voicemail application: the
// call is left as it was, and routing goes on without a mailbox.
var ErrNoVoicemail = errors.New("b2bua: no voicemail application")

// Voicemail sends the caller to mailbox (an extension number) to leave a message, through the
// engine's Config.Voicemail, which answers the call unless it is answered already (an IVR that
// answered first may send its caller to a mailbox).
func (c *Call) Voicemail(ctx context.Context, mailbox string) error {
	app := c.e.cfg.Voicemail
	if app == nil {
		return ErrNoVoicemail
	}
	return app.Voicemail(ctx, c, mailbox)
}
