package pbx

// SetVoicemailPINLimit makes n wrong PINs in a row lock a mailbox (or a source) out of the
// built-in voicemail's menu.
func SetVoicemailPINLimit(p *PBX, n int) { p.vm.pins.SetLimit(n) }

// SetVoicemailMaxMessages makes a mailbox full at n messages.
func SetVoicemailMaxMessages(p *PBX, n int) { p.vm.maxMessages = n }

// SignFeature is the value of X-Pbxkit-Feature another node would send node for feature on
// number.
func SignFeature(p *PBX, node, feature, number string) string {
	return p.signFeature(node, feature, number)
}
