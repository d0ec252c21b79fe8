package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/pbxkit/pbxkit/pbx"
)

// eventBuffer is how many events a slow event-stream client may fall behind before events are
// dropped for it (it is told: an "events.dropped" event).
const eventBuffer = 256

// eventView is a PBX event on the stream; fields that do not apply are left out.
type eventView struct {
	Kind        string    `json:"kind"`
	Time        time.Time `json:"time"`
	CallID      string    `json:"call_id,omitempty"`
	Caller      string    `json:"caller,omitempty"`
	Callee      string    `json:"callee,omitempty"`
	Status      int       `json:"status,omitempty"`
	HangupBy    string    `json:"hangup_by,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	Digit       string    `json:"digit,omitempty"`
	Side        string    `json:"side,omitempty"`
	Slot        string    `json:"slot,omitempty"`
	Leg         string    `json:"leg,omitempty"`
	Path        string    `json:"path,omitempty"`
	Extension   string    `json:"extension,omitempty"`
	Contact     string    `json:"contact,omitempty"`
	Source      string    `json:"source,omitempty"`
	ExpiresSec  int       `json:"expires_sec,omitempty"`
	Queue       string    `json:"queue,omitempty"`
	Waiting     *int      `json:"waiting,omitempty"`
	Position    int       `json:"position,omitempty"`
	Room        string    `json:"room,omitempty"`
	Participant int       `json:"participant,omitempty"`
	Codec       string    `json:"codec,omitempty"`
	Moderator   bool      `json:"moderator,omitempty"`
	Dropped     int64     `json:"dropped,omitempty"`
}

func viewEvent(e pbx.Event) eventView {
	v := eventView{Kind: e.Kind, Time: e.Time, CallID: e.CallID, Caller: e.Caller, Callee: e.Callee, Status: e.Status,
		HangupBy: e.HangupBy, Reason: e.Reason, Digit: e.Digit, Side: e.Side, Slot: e.Slot, Leg: e.Leg, Path: e.Path, Extension: e.Extension,
		Contact: e.Contact, Source: e.Source, ExpiresSec: int(e.Expires / time.Second), Queue: e.Queue, Position: e.Position,
		Room: e.Room, Participant: e.Participant, Codec: e.Codec, Moderator: e.Moderator}
	if e.Kind == pbx.QueueJoined || e.Kind == pbx.QueueLeft {
		n := e.Waiting
		v.Waiting = &n
	}
	return v
}

// events streams the PBX's events as Server-Sent Events (text/event-stream): one "ready" event
// once subscribed, then each event with its kind as the SSE event name and its JSON as data,
// numbered by id. A comment line every Heartbeat keeps idle proxies from closing the stream. The
// stream ends when the client goes, when the PBX shuts down (its subscriptions close) or Close.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream has no end to wait for; the server's timeout does not apply
	sub := s.pbx.Subscribe(eventBuffer)
	defer sub.Close()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: pass events on at once
	w.WriteHeader(http.StatusOK)
	st := sseWriter{w: w, rc: rc}
	st.send("ready", eventView{Kind: "ready", Time: time.Now()})
	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	var dropped int64
	for st.err == nil {
		select {
		case ev, ok := <-sub.C:
			if !ok {
				return // the PBX shut down
			}
			if d := sub.Dropped(); d != dropped {
				dropped = d
				st.send("events.dropped", eventView{Kind: "events.dropped", Time: time.Now(), Dropped: d})
			}
			st.send(ev.Kind, viewEvent(ev))
		case <-heartbeat.C:
			st.comment("keep-alive")
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		}
	}
	s.log.Debug("event stream ended", "remote", r.RemoteAddr, "error", st.err)
}

// sseWriter writes SSE messages (https://html.spec.whatwg.org/multipage/server-sent-events.html)
// and flushes each; the first error sticks.
type sseWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	id  int64
	err error
}

func (s *sseWriter) send(name string, v any) {
	data, err := json.Marshal(v) // one line: JSON has no raw newlines
	if err != nil {
		s.err = err
		return
	}
	s.id++
	s.write(fmt.Sprintf("id: %d\nevent: %s\ndata: %s\n\n", s.id, name, data))
}

func (s *sseWriter) comment(text string) { s.write(": " + text + "\n\n") }

func (s *sseWriter) write(msg string) {
	if s.err != nil {
		return
	}
	if _, s.err = fmt.Fprint(s.w, msg); s.err == nil {
		s.err = s.rc.Flush()
	}
}
