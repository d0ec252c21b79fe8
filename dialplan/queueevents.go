package dialplan

// Kinds of QueueChange.
const (
	QueueJoined = "queue.joined" // a caller started waiting in the queue
	QueueLeft   = "queue.left"   // a caller stopped waiting: answered, gave up, timed out
)

// QueueChange tells an observer (the PBX's event stream) that a queue's line changed.
type QueueChange struct {
	Kind     string // QueueJoined or QueueLeft
	Queue    string
	CallID   string // the waiting caller's call
	Waiting  int    // callers waiting after the change
	Position int    // QueueJoined: the caller's place in line
	Answered bool   // QueueLeft: an agent took the call
	Status   int    // QueueLeft: the wait's result status (200 answered, 408 timed out, 487 gone...)
}

// OnChange sets a function told of every change of the queues' lines. It must not block, and it
// must be set before the first call waits (it is not guarded for changes while calls wait).
func (qs *Queues) OnChange(f func(QueueChange)) { qs.onChange = f }

// changed tells the observer, outside qs.mu.
func (qs *Queues) changed(ch QueueChange) {
	if qs.onChange == nil {
		return
	}
	ch.Waiting = qs.Waiting(ch.Queue)
	qs.onChange(ch)
}
