package admin

import (
	"context"
	"errors"
	"net/http"

	"github.com/pbxkit/pbxkit/dialplan"
)

// queueView is a queue with its agents and its figures since the PBX started: the callers
// waiting on every node, the counts of this node's.
type queueView struct {
	Name        string      `json:"name"`
	Strategy    string      `json:"strategy"`
	MaxWait     int         `json:"max_wait"`
	MaxLen      int         `json:"max_len"`
	Waiting     int         `json:"waiting"`
	LongestWait int         `json:"longest_wait_sec"`
	Answered    int         `json:"answered"`
	Abandoned   int         `json:"abandoned"`
	TimedOut    int         `json:"timed_out"`
	Full        int         `json:"full"`
	Agents      []agentView `json:"agents"`
}

type agentView struct {
	Extension   string `json:"extension"`
	Penalty     int    `json:"penalty"`
	Paused      bool   `json:"paused"`
	PauseReason string `json:"pause_reason"`
	LoggedOut   bool   `json:"logged_out"`
}

func (s *Server) listQueues(w http.ResponseWriter, r *http.Request) {
	qs, err := s.store.Queues(r.Context())
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	out := make([]queueView, 0, len(qs))
	for _, q := range qs {
		st := s.pbx.Queues().StatsAcross(r.Context(), q.Name)
		v := queueView{Name: q.Name, Strategy: q.Strategy, MaxWait: q.MaxWait, MaxLen: q.MaxLen,
			Waiting: st.Waiting, LongestWait: int(st.LongestWait.Seconds()), Answered: st.Answered,
			Abandoned: st.Abandoned, TimedOut: st.TimedOut, Full: st.Full, Agents: make([]agentView, 0, len(q.Members))}
		for _, m := range q.Members {
			v.Agents = append(v.Agents, agentView{Extension: m.Extension, Penalty: m.Penalty, Paused: m.Paused,
				PauseReason: m.PauseReason, LoggedOut: m.LoggedOut})
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, out)
}

// pauseInput is the optional body of a pause: why.
type pauseInput struct {
	Reason string `json:"reason"`
}

// agentState answers a pause or unpause.
type agentState struct {
	Queue     string `json:"queue"`
	Extension string `json:"extension"`
	Paused    bool   `json:"paused"`
	Reason    string `json:"reason,omitempty"`
}

// pauseAgent pauses (or unpauses) an agent in one queue, through the PBX's directory, so the
// change is logged and published as an event the way the feature code's is.
func (s *Server) pauseAgent(paused bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var in pauseInput
		if !s.decode(w, r, &in, true) {
			return
		}
		if !paused && in.Reason != "" {
			writeError(w, http.StatusUnprocessableEntity, "unpause takes no reason")
			return
		}
		queue, ext := r.PathValue("name"), r.PathValue("ext")
		dir, ok := s.pbx.Directory().(dialplan.AgentDirectory)
		if !ok {
			writeError(w, http.StatusConflict, "the PBX's directory keeps no queue agents")
			return
		}
		if err := setAgent(r.Context(), dir, queue, ext, paused, in.Reason); err != nil {
			if errors.Is(err, dialplan.ErrNotMember) {
				writeError(w, http.StatusNotFound, ext+" is not an agent of queue "+queue)
				return
			}
			s.storeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, agentState{Queue: queue, Extension: ext, Paused: paused, Reason: in.Reason})
	}
}

func setAgent(ctx context.Context, dir dialplan.AgentDirectory, queue, ext string, paused bool, reason string) error {
	if queue == "" {
		return dialplan.ErrNotMember // "" would mean every queue of ext
	}
	_, err := dir.SetAgent(ctx, queue, ext, dialplan.AgentChange{Paused: &paused, Reason: reason})
	return err
}
