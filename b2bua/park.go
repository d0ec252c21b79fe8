package b2bua

import (
	"context"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Call park: a party of an answered call transfers the other (blind REFER) to the park number.
// The PBX keeps the call, with the transferee alone in it, in the first free park slot; the
// transferor (the parker) is released and learns the slot from the final NOTIFY ("SIP/2.0 200
// Parked at 701"), a CallParked event and a log line. Whoever dials the slot (Unpark) takes the
// parker's place, as an INVITE with Replaces would. When nobody does within the park timeout,
// the parker is rung back; if it does not answer, the parked party is hung up.

// DefaultParkTimeout is how long a call stays parked before its parker is rung back.
const DefaultParkTimeout = 60 * time.Second

// ParkConfig turns call park on.
type ParkConfig struct {
	// Number is the number a blind transfer parks the transferee at, for example "700"; "" turns
	// parking off.
	Number string
	// Slots are where calls wait, the first free one taken: for example "701" to "709".
	Slots []string
	// Timeout is how long a call stays parked before its parker is rung back. Default
	// DefaultParkTimeout.
	Timeout time.Duration
	// Music is what the parked party hears with the media relay: "tone" (the default) or a WAV
	// file.
	Music string
}

// parkState is a parked call's place.
type parkState struct {
	slot   string
	side   bool   // the side that left (the parker's): true for the caller's side
	parker string // rung back at the timeout
	left   chan struct{}
	stop   context.CancelFunc // stops the hold audio; nil while none plays
}

// parkLot holds the parked calls by slot.
type parkLot struct {
	mu    sync.Mutex
	calls map[string]*Call
}

// reserve gives c slot if it is free on this node.
func (p *parkLot) reserve(slot string, c *Call) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.calls[slot] != nil {
		return false
	}
	p.calls[slot] = c
	return true
}

// at returns the call parked at slot, or nil.
func (p *parkLot) at(slot string) *Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[slot]
}

// free empties slot if c holds it.
func (p *parkLot) free(slot string, c *Call) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.calls[slot] == c {
		delete(p.calls, slot)
	}
}

// IsParkSlot reports whether number is one of the engine's park slots.
func (e *Engine) IsParkSlot(number string) bool {
	for _, s := range e.cfg.Park.Slots {
		if s == number {
			return true
		}
	}
	return false
}

// ParkedSlots returns the slots that hold a call (or are being taken for one) on this node.
func (e *Engine) ParkedSlots() []string {
	e.lot.mu.Lock()
	defer e.lot.mu.Unlock()
	slots := make([]string, 0, len(e.lot.calls))
	for s := range e.lot.calls {
		slots = append(slots, s)
	}
	return slots
}

// Parked returns the Call-ID of the call parked at slot, or "".
func (e *Engine) Parked(slot string) string {
	if c := e.lot.at(slot); c != nil {
		return c.id
	}
	return ""
}

// isParked reports whether one side of the call is parked (or being unparked).
func (c *Call) isParked() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.parked != nil
}

// park carries out a blind transfer to the park number: the transferee waits in a slot.
func (tr *transfer) park() {
	c := tr.c
	slot, ok := c.e.takeSlot(c)
	if !ok {
		tr.log.Info("no free park slot")
		tr.notifyPhrase(486, "All Park Slots Busy", true)
		return
	}
	now := time.Now()
	p := &parkState{slot: slot, side: tr.fromA, left: make(chan struct{})}
	c.mu.Lock()
	if !c.move(stateParked) {
		// The call ended while the slot was being claimed (a round trip to the other nodes).
		c.mu.Unlock()
		c.e.releaseSlot(slot, c)
		tr.log.Info("call ended before it was parked", "slot", slot)
		return
	}
	_, p.parker = c.sideDialog(tr.fromA)
	c.closeSegment(now, "parked")
	c.parked = p
	gone := c.media.sdpA
	if !tr.fromA {
		gone = c.media.sdpB
	}
	c.mu.Unlock()
	c.e.table.remove(tr.x.key(), now) // the parker's BYE, crossing the PBX's, still gets 200
	// The parker's side sends nothing from now on: the relay must not take that for a dead call.
	if _, err := c.sdpFrom(tr.fromA, inactive(gone)); err != nil {
		c.log.Debug("parked side's description", "error", err)
	}
	c.log.Info("call parked", "slot", slot, "parker", p.parker)
	c.emitWith(Event{Kind: CallParked, Slot: slot, Side: side(tr.fromA)})
	tr.notifyPhrase(200, "Parked at "+slot, true)
	c.byeIn(tr.x, "bye to parker")
	c.holdAudio(p)
	c.e.bg.Add(1)
	go c.parkTimer(p)
}

// holdAudio plays hold audio to the parked party, with the media relay, until stopAudio.
func (c *Call) holdAudio(p *parkState) {
	m := c.mediaSession()
	if m == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.mu.Lock()
	desc := c.media.sdpB
	if !p.side {
		desc = c.media.sdpA
	}
	p.stop = cancel
	c.mu.Unlock()
	music := c.e.cfg.Park.Music
	c.e.bg.Add(1)
	go func() {
		defer c.e.bg.Done()
		defer c.e.recoverPanic("hold audio")
		if err := m.PlayTo(ctx, !p.side, desc, music); err != nil && ctx.Err() == nil {
			c.log.Info("no hold audio for the parked call", "error", err)
		}
	}()
}

// stopHold stops the hold audio of a parked call.
func (c *Call) stopHold(p *parkState) {
	c.mu.Lock()
	stop := p.stop
	p.stop = nil
	c.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// leavePark frees the call's slot, once: it was retrieved, rung back or ended.
func (c *Call) leavePark() {
	c.mu.Lock()
	p := c.parked
	c.parked = nil
	c.mu.Unlock()
	if p == nil {
		return
	}
	c.stopHold(p)
	c.e.releaseSlot(p.slot, c)
	close(p.left)
}

// parkTimer rings the parker back once the call has been parked for the park timeout.
func (c *Call) parkTimer(p *parkState) {
	defer c.e.bg.Done()
	defer c.e.recoverPanic("park timer")
	timeout := c.e.cfg.Park.Timeout
	if timeout <= 0 {
		timeout = DefaultParkTimeout
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-t.C:
		c.ringBack(p)
	case <-p.left:
	case <-c.done:
	case <-c.e.quit:
	}
}

// Unpark connects this call's caller to the call parked at slot (retrieval): the parked party is
// re-INVITEd with the caller's offer and the caller answered with its answer, and the two talk
// in the parked call, whose record gets a segment for them. This call ends without a record of
// its own. Nothing parked there comes back as 404, a call being rung back to its parker as 486.
// A call parked at slot on another node (Config.Cluster) is retrieved there: this call dials that
// node and relays.
func (c *Call) Unpark(ctx context.Context, slot string) (Result, error) {
	if c.Decided() {
		return c.endedResult(), ErrDecided
	}
	if len(c.aReq.Body()) == 0 {
		return c.attemptFailed(488, "retrieving a parked call needs an SDP offer in the INVITE"), nil
	}
	z := c.e.lot.at(slot)
	if z == nil {
		return c.dialElsewhere(ctx, func(cl Cluster) (Target, bool, error) { return cl.ParkedElsewhere(ctx, slot) },
			404, "nothing is parked at "+slot)
	}
	if ctx.Err() != nil || !z.moveLocked(stateUnparking) {
		return c.attemptFailed(486, "the call parked at "+slot+" is being retrieved or rung back"), nil
	}
	z.mu.Lock()
	p := z.parked
	z.mu.Unlock()
	z.stopHold(p)
	if code, why := c.joinCall(z, p.side, false); code != 200 {
		z.moveLocked(stateParked)
		z.holdAudio(p)
		return c.attemptFailed(code, why), nil
	}
	z.leavePark()
	z.moveLocked(stateAnswered)
	z.log.Info("parked call retrieved", "slot", slot, "by", c.party())
	z.emitWith(Event{Kind: CallRetrieved, Slot: slot})
	return Result{Answered: true, Status: 200, Reason: "retrieved from " + slot}, nil
}

// ringBack rings the parker with the parked party's session; when it answers, it takes its old
// place in the call; when it does not, the parked party is hung up.
func (c *Call) ringBack(p *parkState) {
	if c.quitting() || !c.moveLocked(stateUnparking) {
		return // a retrieval is under way, or the PBX is stopping
	}
	c.e.active.Add(1)
	defer c.e.active.Done()
	log := c.log.With("slot", p.slot, "parker", p.parker)
	log.Info("park timeout: ringing the parker back")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	targets, err := c.e.cfg.Resolve(ctx, sip.Uri{Scheme: "sip", User: p.parker})
	cancel()
	if err != nil {
		log.Info("parker cannot be rung back", "error", err)
		c.Hangup("park timeout: the parker cannot be called")
		return
	}
	c.mu.Lock()
	heldSDP, heldUser := c.media.sdpB, c.seg.callee
	if !p.side {
		heldSDP, heldUser = c.media.sdpA, c.seg.caller
	}
	c.mu.Unlock()
	r := c.ring(targets, legOrigin{fromUser: heldUser, toUser: p.parker, body: sendRecv(heldSDP)}, ringOptions{})
	if r.leg == nil {
		log.Info("parker did not answer", "status", r.status)
		c.Hangup("park timeout: the parker did not answer")
		return
	}
	// The parker takes its place before the parked party is re-INVITEd: the parked party's BYE
	// may follow its ACK at once, and must then reach the parker (hangup spares the side of a
	// parked call that the parker left).
	c.leavePark()
	c.putSide(p.side, r.leg, &r.leg.d, r.leg.party(), "")
	tr := &transfer{c: c, fromA: p.side, log: log}
	if _, code := tr.bridge(r.res.Body()); code != 200 {
		c.Hangup("park timeout: the parked party did not take the parker's session")
		return
	}
	c.moveLocked(stateAnswered)
	c.emitWith(Event{Kind: CallRetrieved, Slot: p.slot})
}
