package pbx

import (
	"context"

	"github.com/pbxkit/pbxkit/b2bua"
)

// newVoicemail makes the built-in voicemail application (vmapp.go) unless WithVoicemail gave
// one; without a media relay, a data directory or a store that keeps voicemail there is none.
func (p *PBX) newVoicemail() error {
	if p.voicemail != nil {
		return nil
	}
	app, err := p.newVoicemailApp()
	if err != nil || app == nil {
		return err
	}
	p.vm, p.voicemail = app, app
	return nil
}

// voicemailFeature serves the mailbox feature codes (Features.VoicemailMain, VoicemailAny) with
// the built-in application's menu, for calls that routing before default routing left alone.
// handled is false for other numbers, and when there is no built-in application.
func (p *PBX) voicemailFeature(ctx context.Context, c *b2bua.Call) (handled bool, err error) {
	if p.vm == nil || c.Decided() {
		return false, nil
	}
	if _, tried := c.Fallback(); tried {
		return false, nil
	}
	f := p.cfg.Features
	switch number := c.Callee(); {
	case number == "":
		return false, nil
	case number == on(f.VoicemailMain):
		// The caller's own mailbox: the authenticated extension, else (a trusted source) the
		// From user; the PIN is asked either way when the mailbox has one.
		owner := c.User()
		if owner == "" {
			owner = c.Request().From().Address.User
		}
		return true, p.vm.listen(ctx, c, owner, c.User() != "")
	case number == on(f.VoicemailAny):
		return true, p.vm.listen(ctx, c, "", false)
	}
	return false, nil
}
