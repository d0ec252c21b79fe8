package admin

import (
	"errors"
	"net/http"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/pbx"
)

// recordingView answers a start or stop of a call's recording.
type recordingView struct {
	CallID string `json:"call_id"`
	Path   string `json:"path"`
}

// startRecording records a call in progress: 201 with the file's path (an unanswered call is
// recorded from its answer on); 404 for no such call, 409 when it is recorded already, 422 when
// it cannot be (no media relay, a codec the PBX does not decode).
func (s *Server) startRecording(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	path, err := s.pbx.StartRecording(id)
	if err != nil {
		s.recordingError(w, r, err)
		return
	}
	s.log.Info("admin API: call recording started", "call_id", id, "path", path)
	writeJSON(w, http.StatusCreated, recordingView{CallID: id, Path: path})
}

// stopRecording stops recording a call: 200 with the completed file's path; 404 for no such
// call, 409 when it is not being recorded.
func (s *Server) stopRecording(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	path, err := s.pbx.StopRecording(id)
	if err != nil {
		s.recordingError(w, r, err)
		return
	}
	s.log.Info("admin API: call recording stopped", "call_id", id, "path", path)
	writeJSON(w, http.StatusOK, recordingView{CallID: id, Path: path})
}

func (s *Server) recordingError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, pbx.ErrNoCall), errors.Is(err, b2bua.ErrCallEnded):
		writeError(w, http.StatusNotFound, "no call in progress with that id")
	case errors.Is(err, b2bua.ErrRecording):
		writeError(w, http.StatusConflict, "the call is being recorded already")
	case errors.Is(err, b2bua.ErrNotRecording):
		writeError(w, http.StatusConflict, "the call is not being recorded")
	case errors.Is(err, b2bua.ErrNoMedia):
		writeError(w, http.StatusUnprocessableEntity, "the call cannot be recorded: the PBX relays no media for it")
	case errors.Is(err, b2bua.ErrUndecodable):
		writeError(w, http.StatusUnprocessableEntity, "the call cannot be recorded: "+err.Error())
	default:
		s.log.Error("admin API: recording", "method", r.Method, "path", r.URL.Path, "error", err)
		writeError(w, http.StatusInternalServerError, "recording failed: "+err.Error())
	}
}
