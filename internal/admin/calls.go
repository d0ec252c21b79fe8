package admin

import (
	"errors"
	"net/http"
	"time"

	"github.com/pbxkit/pbxkit/pbx"
)

// registrationView is a phone's live registration.
type registrationView struct {
	Extension string    `json:"extension"`
	Contact   string    `json:"contact"`
	Source    string    `json:"source"`
	Transport string    `json:"transport"`
	UserAgent string    `json:"user_agent"`
	ExpiresAt time.Time `json:"expires_at"`
	Node      string    `json:"node"`
}

func (s *Server) listRegistrations(w http.ResponseWriter, r *http.Request) {
	bs, err := s.store.LiveBindings(r.Context())
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	out := make([]registrationView, 0, len(bs))
	for _, b := range bs {
		out = append(out, registrationView{Extension: b.Extension, Contact: b.Contact, Source: b.Source,
			Transport: b.Transport, UserAgent: b.UserAgent, ExpiresAt: b.ExpiresAt, Node: b.NodeID})
	}
	writeJSON(w, http.StatusOK, out)
}

// callView is a call in progress.
type callView struct {
	ID       string     `json:"id"`
	Caller   string     `json:"caller"`
	Dialled  string     `json:"dialled"`
	Callee   string     `json:"callee"`
	State    string     `json:"state"`
	Start    time.Time  `json:"start"`
	Answer   *time.Time `json:"answer,omitempty"`
	Duration int        `json:"duration_sec"`
	// Recording is the file the call is being recorded into, "" when it is not.
	Recording string `json:"recording"`
}

func (s *Server) listCalls(w http.ResponseWriter, r *http.Request) {
	calls := s.pbx.Calls()
	out := make([]callView, 0, len(calls))
	now := time.Now()
	for _, c := range calls {
		v := callView{ID: c.ID, Caller: c.Caller, Dialled: c.Dialled, Callee: c.Callee, State: c.State,
			Start: c.Start, Duration: int(now.Sub(c.Start) / time.Second), Recording: c.Recording}
		if !c.Answer.IsZero() {
			a := c.Answer
			v.Answer = &a
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) hangupCall(w http.ResponseWriter, r *http.Request) {
	err := s.pbx.Hangup(r.PathValue("id"), "hung up through the admin API")
	if errors.Is(err, pbx.ErrNoCall) {
		writeError(w, http.StatusNotFound, "no call in progress with that id")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// reloadResult answers a dialplan reload.
type reloadResult struct {
	Version int `json:"version"`
}

func (s *Server) reloadDialplan(w http.ResponseWriter, r *http.Request) {
	if s.pbx.Config().DialplanScript == "" {
		writeError(w, http.StatusConflict, "the PBX runs no Lua dialplan to reload")
		return
	}
	if err := s.pbx.ReloadDialplan(); err != nil {
		// The running version stays: say why the new one was refused.
		writeError(w, http.StatusUnprocessableEntity, "the dialplan did not load, the running version stays: "+err.Error())
		return
	}
	s.log.Info("admin API: dialplan reloaded", "version", s.pbx.DialplanVersion())
	writeJSON(w, http.StatusOK, reloadResult{Version: s.pbx.DialplanVersion()})
}
