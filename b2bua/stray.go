package b2bua

import (
	"strings"

	"github.com/emiago/sipgo/sip"
)

// HandleStrayResponse takes a response that matched no client transaction. A 2xx to one of the
// engine's INVITEs retransmitted after its transaction ended (our ACK was lost, or a fork answered
// after its transaction was gone) must be acknowledged, or the phone retransmits it for 32 s and
// may keep its dialog up: a 2xx of a live call's dialog is ACKed again, any other one is ACKed and
// hung up with BYE. Only responses whose Via carries the engine's branch prefix are touched, and
// the ACK and BYE go only to the address the response came from, so a forged 200 cannot make the
// PBX send to a third party. It reports whether it handled res.
func (e *Engine) HandleStrayResponse(res *sip.Response) bool {
	if !res.IsSuccess() || res.CSeq() == nil || res.CSeq().MethodName != sip.INVITE {
		return false
	}
	via, from, to, callID := res.Via(), res.From(), res.To(), res.CallID()
	if via == nil || from == nil || to == nil || callID == nil {
		return false
	}
	if b, _ := via.Params.Get("branch"); !strings.HasPrefix(b, e.cfg.BranchPrefix) || e.cfg.BranchPrefix == sip.RFC3261BranchMagicCookie {
		return false
	}
	localTag, _ := from.Params.Get("tag")
	remoteTag, _ := to.Params.Get("tag")
	target, ok := remoteTargetOf(res)
	if !ok {
		return false
	}
	ref, known := e.table.lookup(dialogKey(callID.Value(), localTag, remoteTag))

	self := sip.Uri{Scheme: "sip", Host: via.Host, Port: via.Port}
	d := dialogSide{
		callID: callID.Value(), localURI: *from.Address.Clone(), localTag: localTag,
		remoteURI: *to.Address.Clone(), remoteTag: remoteTag, target: target,
		routes: routeSet(res.GetHeaders("Record-Route"), true), dest: res.Source(),
		transport: strings.ToLower(via.Transport), cseq: res.CSeq().SeqNo,
		contact: &sip.ContactHeader{Address: self},
	}
	ack := d.requestCSeq(sip.ACK, res.CSeq().SeqNo, e.cfg.BranchPrefix)
	if err := e.clientFor(ack).WriteRequest(ack); err != nil {
		e.log.Debug("ack of a stray 2xx", "error", err)
	}
	if known && !ref.aleg {
		e.log.Debug("2xx retransmission acknowledged again", "call_id", callID.Value())
		return true
	}
	e.log.Info("2xx for no live call: acknowledged and hung up", "call_id", callID.Value(), "src", res.Source())
	bye := d.request(sip.BYE, e.cfg.BranchPrefix)
	e.sendAsync(bye, e.log, "bye of a stray 2xx")
	return true
}
