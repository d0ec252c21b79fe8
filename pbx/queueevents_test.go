package pbx_test

import (
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// TestQueueEvents: a caller joining a queue and leaving it answered are published, with the
// queue, the call and the line's length (agents' pauses: internal/admin TestQueuesAndAgents).
func TestQueueEvents(t *testing.T) {
	o := newCallCentre(t, "sqlite::memory:", store.Queue{Name: "sales", Strategy: store.StrategyLinear}, "101", "102", "103")
	sub := o.tp.Subscribe(64)
	defer sub.Close()
	inv := o.call("sales")
	o.queueStep(t, inv, "101+", "queue call")
	id := inv.CallID().Value()
	var got []pbx.Event
	for deadline := time.After(5 * time.Second); len(got) < 2; {
		select {
		case ev := <-sub.C:
			if ev.Kind == pbx.QueueJoined || ev.Kind == pbx.QueueLeft {
				got = append(got, ev)
			}
		case <-deadline:
			t.Fatalf("queue events so far: %+v", got)
		}
	}
	if j := got[0]; j.Kind != pbx.QueueJoined || j.Queue != "sales" || j.CallID != id || j.Position != 1 || j.Waiting != 1 {
		t.Errorf("joined: %+v", j)
	}
	if l := got[1]; l.Kind != pbx.QueueLeft || l.Queue != "sales" || l.CallID != id || l.Waiting != 0 || l.Status != 200 {
		t.Errorf("left: %+v", l)
	}
}
