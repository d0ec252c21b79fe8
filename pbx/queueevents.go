package pbx

import "github.com/pbxkit/pbxkit/dialplan"

// Queue events: the queues' lines (dialplan.Queues tells of callers joining and leaving) and
// agents paused or unpaused through the directory (feature code, Lua, admin API).

// watchQueues publishes the queues' line changes as events.
func (p *PBX) watchQueues() {
	p.queues.OnChange(func(ch dialplan.QueueChange) {
		p.events.publish(Event{Kind: ch.Kind, Time: p.now(), Queue: ch.Queue, CallID: ch.CallID,
			Waiting: ch.Waiting, Position: ch.Position, Status: ch.Status})
	})
}

// agentChanged publishes an agent's pause or unpause.
func (p *PBX) agentChanged(queue, ext string, ch dialplan.AgentChange) {
	if ch.Paused == nil {
		return
	}
	ev := Event{Kind: AgentUnpaused, Time: p.now(), Queue: queue, Extension: ext}
	if *ch.Paused {
		ev.Kind, ev.Reason = AgentPaused, ch.Reason
	}
	p.events.publish(ev)
}
